//! The Krmx server for Rust hosts: the engine behind the C API and the `krmx serve` command.
//!
//! The protocol state machine runs on the host's thread, inside [`Server::poll`] and the other
//! calls; the shared I/O runtime only moves bytes. So the host's view is exactly the sequence of
//! events it has polled, and a call such as [`Server::send`] fails at once when it cannot be done.

mod config;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use config::ServerConfig;

use crate::error::{Error, ErrorKind, Result};
use crate::host::{Host, Machine, Waker};
use crate::proto::id_map::IdMap;
use crate::proto::server::{ActionError, Output, ServerCore};
use crate::proto::{ConnectionId, Message, ServerEvent, ServerStatus, User};
use crate::runtime::connection::{ConnectionHandle, NetEvent};
use crate::runtime::inbox::InboxSender;
use crate::runtime::listener::{Listener, ListenerSettings};

/// A Krmx server. Every method may be called from any thread; [`Server::poll`] should be called
/// from one thread at a time (events are delivered once, in order).
pub struct Server {
    host: Host<State>,
}

struct State {
    core: ServerCore,
    settings: ListenerSettings,
    inbox_tx: InboxSender<NetEvent>,
    connections: IdMap<ConnectionHandle>,
    events: VecDeque<ServerEvent>,
    /// Connections whose writers `carry_out` wakes (kept to reuse its room).
    to_wake: Vec<ConnectionId>,
    listener: Option<Listener>,
    port: Option<u16>,
}

/// Wakes a thread blocked in [`Server::poll`] (which then returns). Cheap to clone; any thread.
pub type ServerWaker = Waker;

impl Server {
    pub fn new(config: ServerConfig) -> Server {
        let (core_config, settings, queue_bytes) = config.split();
        let host = Host::new(queue_bytes, |inbox_tx| State {
            core: ServerCore::new(core_config),
            settings,
            inbox_tx,
            connections: IdMap::default(),
            events: VecDeque::new(),
            to_wake: Vec::new(),
            listener: None,
            port: None,
        });
        Server { host }
    }

    /// Starts listening on `port` (0: any free port) of the configured host. Returns the port.
    /// A taken port or a bad address is an error now; the `Listen` event follows on poll.
    pub fn listen(&self, port: u16) -> Result<u16> {
        self.host.act(|state| {
            state.core.starting()?;
            let mut settings = state.settings.clone();
            settings.port = port;
            match Listener::start(settings, state.inbox_tx.clone()) {
                Ok(listener) => {
                    let port = listener.port;
                    state.listener = Some(listener);
                    state.port = Some(port);
                    state.core.listening(port);
                    state.carry_out();
                    Ok(port)
                }
                Err(e) => {
                    state.core.listen_failed();
                    let host = &state.settings.host;
                    Err(Error::new(ErrorKind::Io, format!("cannot listen on {host}:{port}: {e}")))
                }
            }
        })
    }

    /// The next event, waiting up to `timeout` for one (`None`: wait as long as it takes).
    /// Returns `None` when the time is up or when woken by a [`ServerWaker`].
    pub fn poll(&self, timeout: Option<Duration>) -> Option<ServerEvent> {
        self.host.poll(timeout)
    }

    /// A handle that wakes a blocked [`Server::poll`] from another thread.
    pub fn waker(&self) -> ServerWaker {
        self.host.waker()
    }

    /// Answers an `Authenticate` event: `Ok(())` accepts; `Err(reason)` rejects with that reason
    /// (`None`: `authentication failed`).
    pub fn authenticate(&self, request_id: u64, decision: std::result::Result<(), Option<String>>) -> Result<()> {
        self.act(|core| core.authenticate(request_id, decision))
    }

    /// Creates an unlinked user (every linked user is told).
    pub fn join(&self, username: &str) -> Result<()> {
        self.act(|core| core.join(username))
    }

    /// Unlinks a user's connection; the connection stays open and may link again.
    pub fn unlink(&self, username: &str) -> Result<()> {
        self.act(|core| core.unlink(username))
    }

    /// Makes a user leave (unlinking it first if it is linked).
    pub fn kick(&self, username: &str) -> Result<()> {
        self.act(|core| core.kick(username))
    }

    /// Sends a custom message to one linked user.
    pub fn send(&self, username: &str, message: &Message) -> Result<()> {
        self.act(|core| core.send(username, message))
    }

    /// Sends a custom message to every linked user except `skip`.
    pub fn broadcast(&self, message: &Message, skip: Option<&str>) -> Result<()> {
        self.act(|core| core.broadcast(message, skip))
    }

    /// Every user leaves, then every connection closes; a `Close` event follows once all are gone.
    pub fn close(&self) -> Result<()> {
        self.host.act(|state| {
            state.core.begin_close()?;
            state.carry_out();
            match &state.listener {
                Some(listener) => listener.shutdown(),
                None => {
                    state.core.closed();
                    state.carry_out();
                }
            }
            Ok(())
        })
    }

    /// Users in join order.
    pub fn users(&self) -> Vec<User> {
        self.host.read(|state| {
            state.core.users().map(User::from).collect()
        })
    }

    /// The user at `index` in join order.
    pub fn user(&self, index: usize) -> Option<User> {
        self.host.read(|state| {
            state.core.user_at(index).map(User::from)
        })
    }

    pub fn user_count(&self) -> usize {
        self.host.read(|state| state.core.user_count())
    }

    pub fn status(&self) -> ServerStatus {
        self.host.read(|state| state.core.status())
    }

    /// The port listened on, once listening.
    pub fn port(&self) -> Option<u16> {
        self.host.read(|state| state.port)
    }

    fn act(&self, action: impl FnOnce(&mut ServerCore) -> std::result::Result<(), ActionError>) -> Result<()> {
        self.host.act(|state| {
            action(&mut state.core)?;
            state.carry_out();
            Ok(())
        })
    }
}

impl Machine for State {
    type Event = ServerEvent;

    fn handle(&mut self, input: NetEvent, now: Instant) {
        State::handle(self, input, now);
    }

    fn tick(&mut self, now: Instant) {
        self.core.tick(now);
        self.carry_out();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    fn pop_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    fn stop_io(&mut self) {
        // The listener's shutdown closes every connection it accepted too.
        if let Some(listener) = &self.listener {
            listener.shutdown();
        }
    }
}

impl State {
    fn handle(&mut self, input: NetEvent, now: Instant) {
        match input {
            NetEvent::Opened { id, handle } => {
                self.connections.insert(id, handle);
                self.core.connection_opened(id);
            }
            NetEvent::Frame { id, message } => self.core.message(id, message, now),
            NetEvent::Closed { id, .. } => {
                self.connections.remove(&id);
                self.core.connection_closed(id);
            }
            NetEvent::Stopped => {
                self.listener = None;
                self.core.closed();
            }
            NetEvent::Wake => {}
        }
        // Timers the input started (the link time limit) count from now.
        self.core.tick(now);
        self.carry_out();
    }

    /// Carries out what the protocol decided: frames to the I/O side, events to the queue.
    /// Each connection's writer is woken once, after everything for it is queued.
    fn carry_out(&mut self) {
        let mut to_wake = std::mem::take(&mut self.to_wake);
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send { to, frame } => {
                    if let Some(connection) = self.connections.get(&to) {
                        if connection.queue(frame) {
                            to_wake.push(to);
                        }
                    }
                }
                Output::Close { connection, reason } => {
                    if let Some(connection) = self.connections.get(&connection) {
                        connection.close(reason);
                    }
                }
                Output::Event(event) => self.events.push_back(event),
            }
        }
        for id in to_wake.drain(..) {
            if let Some(connection) = self.connections.get(&id) {
                connection.wake();
            }
        }
        self.to_wake = to_wake;
    }
}

