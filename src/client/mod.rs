//! The Krmx client for Rust hosts: the engine behind the C API and the `krmx connect` command.
//!
//! As with the server, the protocol runs on the host's thread inside [`Client::poll`] and the
//! other calls; the shared I/O runtime dials, moves bytes and checks liveness. Many clients in one
//! process share that runtime's threads.

mod config;

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

pub use config::ClientConfig;

use crate::error::{Error, ErrorKind, Result};
use crate::host::{Host, Machine, Waker};
use crate::proto::client::{ClientActionError, ClientCore, ClientEvent, ClientOutput, ClientStatus};
use crate::proto::{Message, User};
use crate::runtime::connection::{ConnectionHandle, ConnectionId, NetEvent};
use crate::runtime::dialer::{check_url, Dial, DialSettings};
use crate::runtime::inbox::InboxSender;

/// A Krmx client. Every method may be called from any thread; [`Client::poll`] should be called
/// from one thread at a time (events are delivered once, in order).
pub struct Client {
    host: Host<State>,
}

struct State {
    core: ClientCore,
    settings: DialSettings,
    inbox_tx: InboxSender<NetEvent>,
    /// Each dial gets a new id, so news from an older connection is recognised and ignored.
    connection_id: ConnectionId,
    dial: Option<Dial>,
    connection: Option<ConnectionHandle>,
    events: VecDeque<ClientEvent>,
}

/// Wakes a thread blocked in [`Client::poll`] (which then returns). Cheap to clone; any thread.
pub type ClientWaker = Waker;

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
        let host = Host::new(queue_bytes, |inbox_tx| State {
            core: ClientCore::new(core_config),
            settings,
            inbox_tx,
            connection_id: 0,
            dial: None,
            connection: None,
            events: VecDeque::new(),
        });
        Client { host }
    }

    /// Connects to a `ws://host:port/path?query` URL. A malformed URL is an error now; a server
    /// that cannot be reached is a `Close` event later (`Connect` when it worked).
    pub fn connect(&self, url: &str) -> Result<()> {
        check_url(url).map_err(|e| Error::new(ErrorKind::InvalidArgument, e))?;
        self.host.act(|state| {
            state.core.connect()?;
            state.settings.url = url.to_string();
            state.carry_out();
            Ok(())
        })
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
    /// Returns `None` when the time is up or when woken by a [`ClientWaker`]. Reconnect timers
    /// run in here too: keep polling while reconnecting.
    pub fn poll(&self, timeout: Option<Duration>) -> Option<ClientEvent> {
        self.host.poll(timeout)
    }

    /// A handle that wakes a blocked [`Client::poll`] from another thread.
    pub fn waker(&self) -> ClientWaker {
        self.host.waker()
    }

    pub fn status(&self) -> ClientStatus {
        self.host.read(|state| state.core.status())
    }

    /// Own username while linking or linked.
    pub fn username(&self) -> Option<String> {
        self.host.read(|state| state.core.username().map(str::to_string))
    }

    /// Known users in join order (empty unless linked), as of the events polled so far.
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

    fn act(&self, action: impl FnOnce(&mut ClientCore) -> std::result::Result<(), ClientActionError>) -> Result<()> {
        self.host.act(|state| {
            action(&mut state.core)?;
            state.carry_out();
            Ok(())
        })
    }
}

impl State {
    /// Carries out what the protocol decided: dials, frames, closes, and events to the queue.
    fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                ClientOutput::Dial => {
                    self.connection_id += 1;
                    self.connection = None;
                    self.dial = Some(Dial::start(self.connection_id, self.settings.clone(), self.inbox_tx.clone()));
                }
                ClientOutput::Send(frame) => {
                    if let Some(connection) = &self.connection {
                        connection.send(frame);
                    }
                }
                ClientOutput::Close => match (&self.connection, &self.dial) {
                    (Some(connection), _) => connection.close(""),
                    (None, Some(dial)) => dial.shutdown(),
                    (None, None) => {}
                },
                ClientOutput::Event(event) => self.events.push_back(event),
            }
        }
    }
}

impl Machine for State {
    type Event = ClientEvent;

    fn handle(&mut self, input: NetEvent, now: Instant) {
        match input {
            NetEvent::Opened { id, handle } => {
                if id != self.connection_id {
                    handle.close("");
                    return;
                }
                self.core.opened();
                if self.core.status() == ClientStatus::Closing {
                    // The host disconnected while this connection was being made.
                    handle.close("");
                }
                self.connection = Some(handle);
            }
            NetEvent::Frame { id, message } if id == self.connection_id => self.core.message(message, now),
            NetEvent::Closed { id, why } if id == self.connection_id => {
                self.connection = None;
                self.dial = None;
                self.core.closed(why, now);
            }
            NetEvent::Frame { .. } | NetEvent::Closed { .. } | NetEvent::Stopped | NetEvent::Wake => {}
        }
        self.carry_out();
    }

    fn tick(&mut self, now: Instant) {
        self.core.tick(now);
        self.carry_out();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    fn pop_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    fn stop_io(&mut self) {
        // The dial's shutdown also closes the connection it opened ("going away").
        if let Some(dial) = &self.dial {
            dial.shutdown();
        }
    }
}

