//! What the server and the client share on the host's side: the state behind a mutex, the inbox
//! from the I/O thread, and the poll loop that runs the protocol on the host's thread.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::runtime::connection::NetEvent;
use crate::runtime::inbox::{inbox, InboxReceiver, InboxSender};

/// A protocol state machine together with what carries out its decisions.
pub(crate) trait Machine {
    type Event;
    /// Takes one input from the I/O side.
    fn handle(&mut self, input: NetEvent, now: Instant);
    /// Runs the timers that are due.
    fn tick(&mut self, now: Instant);
    /// When `tick` next has work to do.
    fn next_deadline(&self) -> Option<Instant>;
    /// The next event for the host, in order.
    fn pop_event(&mut self) -> Option<Self::Event>;
    fn has_events(&self) -> bool;
    /// Asks every I/O task this machine started to end: listeners stop, dials are abandoned,
    /// connections close (their peers get a close frame). Called once, when the host is dropped.
    fn stop_io(&mut self);
}

/// How long dropping a host (`krmx_*_free`) waits for its I/O tasks to end. They end within
/// milliseconds when the peers read; a peer that does not read gets the connection's short grace
/// for freed handles (`FREED_GRACE` in runtime/connection.rs), well within this.
pub const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// Wakes a thread blocked in a poll (which then returns). Cheap to clone; any thread.
#[derive(Clone)]
pub struct Waker {
    inbox_tx: InboxSender<NetEvent>,
}

impl Waker {
    pub fn wake(&self) {
        self.inbox_tx.push_wake(NetEvent::Wake);
    }
}

pub(crate) struct Host<M: Machine> {
    state: Mutex<Guarded<M>>,
    inbox: InboxReceiver<NetEvent>,
    inbox_tx: InboxSender<NetEvent>,
}

struct Guarded<M> {
    machine: M,
    /// The polling thread is blocked waiting for input: actions from other threads wake it.
    poller_waiting: bool,
}

impl<M: Machine> Host<M> {
    /// `make` receives the sending side of the inbox, for the I/O tasks the machine will start.
    pub fn new(queue_bytes: usize, make: impl FnOnce(InboxSender<NetEvent>) -> M) -> Self {
        let (inbox_tx, inbox) = inbox(queue_bytes);
        let machine = make(inbox_tx.clone());
        Host { state: Mutex::new(Guarded { machine, poller_waiting: false }), inbox, inbox_tx }
    }

    fn lock(&self) -> MutexGuard<'_, Guarded<M>> {
        // A panic while holding the lock leaves consistent state behind (a core never panics
        // half-way through a step), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the state.
    pub fn read<R>(&self, read: impl FnOnce(&M) -> R) -> R {
        read(&self.lock().machine)
    }

    /// Changes the state on the host's behalf; a poll waiting on another thread is woken when
    /// this queued events for it.
    pub fn act<R>(&self, action: impl FnOnce(&mut M) -> R) -> R {
        let mut state = self.lock();
        let result = action(&mut state.machine);
        if state.poller_waiting && state.machine.has_events() {
            self.inbox_tx.push_wake(NetEvent::Wake);
        }
        result
    }

    pub fn waker(&self) -> Waker {
        Waker { inbox_tx: self.inbox_tx.clone() }
    }

    /// The next event, waiting up to `timeout` for one (`None`: as long as it takes). Returns
    /// `None` when the time is up or when woken. The protocol runs here, on the caller's thread.
    pub fn poll(&self, timeout: Option<Duration>) -> Option<M::Event> {
        // One clock read per turn (the first one serves the deadline too).
        let mut now = Instant::now();
        let deadline = timeout.map(|t| now + t);
        loop {
            let wait_until = {
                let mut state = self.lock();
                state.poller_waiting = false;
                state.machine.tick(now);
                loop {
                    if let Some(event) = state.machine.pop_event() {
                        return Some(event);
                    }
                    match self.inbox.try_recv() {
                        // A wake already queued counts as much as one that arrives while waiting.
                        Some(NetEvent::Wake) => return None,
                        Some(input) => state.machine.handle(input, now),
                        None => break,
                    }
                }
                if deadline.is_some_and(|d| now >= d) {
                    return None;
                }
                state.poller_waiting = true;
                match (deadline, state.machine.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            match self.inbox.recv_deadline(wait_until) {
                Some(NetEvent::Wake) => {
                    let mut state = self.lock();
                    state.poller_waiting = false;
                    return state.machine.pop_event();
                }
                Some(input) => self.lock().machine.handle(input, Instant::now()),
                None => {}
            }
            now = Instant::now();
        }
    }
}

impl<M: Machine> Drop for Host<M> {
    /// Ends what the host started before it goes: after this, none of its tasks runs, its sockets
    /// are closed and its port may be listened on again (unless a task outlived `STOP_DEADLINE`,
    /// which only a bug can make happen).
    fn drop(&mut self) {
        // First close the inbox: tasks waiting for room give up, and connections know their host
        // is gone (so their last words get the short grace).
        self.inbox.close();
        self.lock().machine.stop_io();
        self.inbox.tasks().wait(Instant::now() + STOP_DEADLINE);
    }
}
