//! The Krmx client for Rust hosts: the engine behind the C API and the `krmx connect` command.
//!
//! As with the server, the protocol runs on the host's thread inside [`Client::poll`] and the
//! other calls; the shared I/O runtime dials, moves bytes and checks liveness. Many clients in one
//! process share that runtime's threads.

mod config;

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use config::ClientConfig;

use crate::error::{Error, ErrorKind, Result};
use crate::proto::client::{ClientActionError, ClientCore, ClientEvent, ClientOutput, ClientStatus};
use crate::proto::{Message, User};
use crate::runtime::connection::{ConnectionHandle, ConnectionId, NetEvent};
use crate::runtime::dialer::{check_url, Dial, DialSettings};
use crate::runtime::inbox::{inbox, InboxReceiver, InboxSender};

/// A Krmx client. Every method may be called from any thread; [`Client::poll`] should be called
/// from one thread at a time (events are delivered once, in order).
pub struct Client {
    state: Mutex<State>,
    inbox: InboxReceiver<NetEvent>,
    inbox_tx: InboxSender<NetEvent>,
}

struct State {
    core: ClientCore,
    settings: DialSettings,
    /// Each dial gets a new id, so news from an older connection is recognised and ignored.
    connection_id: ConnectionId,
    dial: Option<Dial>,
    connection: Option<ConnectionHandle>,
    events: VecDeque<ClientEvent>,
    inbox_tx: InboxSender<NetEvent>,
    /// The polling thread is blocked waiting for input: actions from other threads wake it.
    poller_waiting: bool,
}

/// Wakes a thread blocked in [`Client::poll`] (which then returns). Cheap to clone; any thread.
#[derive(Clone)]
pub struct ClientWaker {
    inbox_tx: InboxSender<NetEvent>,
}

impl ClientWaker {
    pub fn wake(&self) {
        self.inbox_tx.push_wake(NetEvent::Wake);
    }
}

impl From<ClientActionError> for Error {
    fn from(e: ClientActionError) -> Self {
        let kind = match e {
            ClientActionError::WrongStatus { .. } => ErrorKind::WrongStatus,
            ClientActionError::ReservedType => ErrorKind::ReservedType,
        };
        Error::new(kind, e.to_string())
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Client {
        // Jitter must differ between clients (and processes) that drop together.
        let seed = RandomState::new().hash_one(std::time::SystemTime::now());
        let (core_config, settings, queue_bytes) = config.split(seed);
        let (inbox_tx, inbox) = inbox(queue_bytes);
        Client {
            state: Mutex::new(State {
                core: ClientCore::new(core_config),
                settings,
                connection_id: 0,
                dial: None,
                connection: None,
                events: VecDeque::new(),
                inbox_tx: inbox_tx.clone(),
                poller_waiting: false,
            }),
            inbox,
            inbox_tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The core never panics half-way through a step, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects to a `ws://host:port/path?query` URL. A malformed URL is an error now; a server
    /// that cannot be reached is a `Close` event later (`Connect` when it worked).
    pub fn connect(&self, url: &str) -> Result<()> {
        check_url(url).map_err(|e| Error::new(ErrorKind::InvalidArgument, e))?;
        let mut state = self.lock();
        let previous = std::mem::replace(&mut state.settings.url, url.to_string());
        if let Err(e) = state.core.connect() {
            state.settings.url = previous;
            return Err(e.into());
        }
        self.carry_out(&mut state);
        Ok(())
    }

    /// Links to `username`, with an optional `auth` string for the server's authentication.
    pub fn link(&self, username: &str, auth: Option<&str>) -> Result<()> {
        self.act(|core| core.link(username, auth))
    }

    /// Unlinks; the connection stays open and may link again.
    pub fn unlink(&self) -> Result<()> {
        self.act(ClientCore::unlink)
    }

    /// Leaves: the server forgets this user.
    pub fn leave(&self) -> Result<()> {
        self.act(ClientCore::leave)
    }

    /// Sends a custom message (only while linked; never a `krmx/` type).
    pub fn send(&self, message: &Message) -> Result<()> {
        self.act(|core| core.send_message(message))
    }

    /// Closes the connection, or stops reconnecting; a `Close` event follows.
    pub fn disconnect(&self) -> Result<()> {
        self.act(ClientCore::disconnect)
    }

    /// The next event, waiting up to `timeout` for one (`None`: wait as long as it takes).
    /// Returns `None` when the time is up or when woken by a [`ClientWaker`].
    pub fn poll(&self, timeout: Option<Duration>) -> Option<ClientEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait_until = {
                let mut state = self.lock();
                state.poller_waiting = false;
                let now = Instant::now();
                state.core.tick(now);
                self.carry_out(&mut state);
                // A wake already queued counts as much as one that arrives while waiting.
                let mut woken = false;
                while state.events.is_empty() {
                    match self.inbox.try_recv() {
                        Some(NetEvent::Wake) => {
                            woken = true;
                            break;
                        }
                        Some(input) => self.handle(&mut state, input),
                        None => break,
                    }
                }
                if let Some(event) = state.events.pop_front() {
                    return Some(event);
                }
                if woken || deadline.is_some_and(|d| now >= d) {
                    return None;
                }
                state.poller_waiting = true;
                match (deadline, state.core.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            match self.inbox.recv_deadline(wait_until) {
                Some(NetEvent::Wake) => {
                    let mut state = self.lock();
                    state.poller_waiting = false;
                    return state.events.pop_front();
                }
                Some(input) => {
                    let mut state = self.lock();
                    self.handle(&mut state, input);
                }
                None => {}
            }
        }
    }

    /// A handle that wakes a blocked [`Client::poll`] from another thread.
    pub fn waker(&self) -> ClientWaker {
        ClientWaker { inbox_tx: self.inbox_tx.clone() }
    }

    pub fn status(&self) -> ClientStatus {
        self.lock().core.status()
    }

    /// Own username while linking or linked.
    pub fn username(&self) -> Option<String> {
        self.lock().core.username().map(str::to_string)
    }

    /// Known users in join order (empty unless linked), as of the events polled so far.
    pub fn users(&self) -> Vec<User> {
        let state = self.lock();
        state.core.users().map(|(name, is_linked)| User { username: name.to_string(), is_linked }).collect()
    }

    /// The user at `index` in join order.
    pub fn user(&self, index: usize) -> Option<User> {
        let state = self.lock();
        state.core.user_at(index).map(|(name, is_linked)| User { username: name.to_string(), is_linked })
    }

    pub fn user_count(&self) -> usize {
        self.lock().core.user_count()
    }

    fn act(&self, action: impl FnOnce(&mut ClientCore) -> std::result::Result<(), ClientActionError>) -> Result<()> {
        let mut state = self.lock();
        action(&mut state.core)?;
        self.carry_out(&mut state);
        // A poll waiting on another thread must see what this action queued.
        if state.poller_waiting && !state.events.is_empty() {
            self.inbox_tx.push_wake(NetEvent::Wake);
        }
        Ok(())
    }

    fn handle(&self, state: &mut State, input: NetEvent) {
        let now = Instant::now();
        match input {
            NetEvent::Opened { id, handle } => {
                if id != state.connection_id {
                    handle.close();
                    return;
                }
                state.core.opened();
                if state.core.status() == ClientStatus::Closing {
                    // The host disconnected while this connection was being made.
                    handle.close();
                }
                state.connection = Some(handle);
            }
            NetEvent::Frame { id, data } if id == state.connection_id => state.core.frame(&data, now),
            NetEvent::Closed { id, why } if id == state.connection_id => {
                state.connection = None;
                state.dial = None;
                state.core.closed(why, now);
            }
            NetEvent::Frame { .. } | NetEvent::Closed { .. } | NetEvent::Stopped | NetEvent::Wake => {}
        }
        self.carry_out(state);
    }

    /// Carries out what the protocol decided: dials, frames, closes, and events to the queue.
    fn carry_out(&self, state: &mut State) {
        while let Some(output) = state.core.poll_output() {
            match output {
                ClientOutput::Dial => {
                    state.connection_id += 1;
                    state.connection = None;
                    state.dial = Some(Dial::start(state.connection_id, state.settings.clone(), state.inbox_tx.clone()));
                }
                ClientOutput::Send(frame) => {
                    if let Some(connection) = &state.connection {
                        connection.send(frame);
                    }
                }
                ClientOutput::Close => match (&state.connection, &state.dial) {
                    (Some(connection), _) => connection.close(),
                    (None, Some(dial)) => dial.shutdown(),
                    (None, None) => {}
                },
                ClientOutput::Event(event) => state.events.push_back(event),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The connection closes gracefully on the I/O thread; nothing waits for it here.
        let state = self.lock();
        if let Some(connection) = &state.connection {
            connection.close();
        }
        if let Some(dial) = &state.dial {
            dial.shutdown();
        }
    }
}
