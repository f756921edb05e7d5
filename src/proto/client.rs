//! The Krmx client as a state machine: PROTOCOL.md "Client behaviour", plus the automatic
//! reconnect that the reference client leaves as a TODO.
//!
//! Inputs: the host's actions (connect, link, unlink, leave, send, disconnect), the transport's
//! news (opened, frame, closed) and the passing of time. Outputs ([`ClientOutput`]): dial, frames
//! to write, close, and events for the host, in order.
//!
//! Reconnecting: when the connection drops without the host asking (the server closed it, the
//! network failed, the liveness check fired), a client with a [`ReconnectPolicy`] dials again after
//! an exponential backoff with jitter, and re-links with the same username and auth if it meant to
//! be linked. A re-link refused with "user NAME is already linked" is retried the same way: the
//! server may not have noticed yet that the old connection is dead.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::Value;

use super::message::{krmx, Message};
use super::version::DEFAULT_PROTOCOL_VERSION;

/// The client's lifecycle: initializing → connecting → connected → linking → linked → unlinking →
/// closing → closed. While reconnecting it is connecting (waiting or dialing), then linking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Initializing,
    Connecting,
    Connected,
    Linking,
    Linked,
    Unlinking,
    Closing,
    Closed,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Initializing => "initializing",
            ClientStatus::Connecting => "connecting",
            ClientStatus::Connected => "connected",
            ClientStatus::Linking => "linking",
            ClientStatus::Linked => "linked",
            ClientStatus::Unlinking => "unlinking",
            ClientStatus::Closing => "closing",
            ClientStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the host learns, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The WebSocket is open (also after each successful reconnect).
    Connect,
    /// The server accepted the link: the client is linked, and knows itself as a linked user.
    Accept,
    /// The server rejected the link, with its reason.
    Reject { reason: String },
    Join { username: String },
    Link { username: String },
    Unlink { username: String },
    Leave { username: String },
    /// A custom message from the server.
    Message { message: Message },
    /// The connection was lost (or a re-link was refused because the server still holds the old
    /// link): attempt `attempt` starts after `delay`. The user table is empty until the re-link.
    Reconnecting { attempt: u32, delay: Duration, why: String },
    /// Back: connected again and, when the client was linked, re-linked (the user table is rebuilt
    /// by the Join and Link events that follow, as after any Accept).
    Reconnect,
    /// The connection is closed for good: the host disconnected, the server went away without
    /// reconnecting enabled, the first connect failed, or reconnecting gave up.
    Close { why: String },
}

/// What the state machine asks of the transport and the host.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutput {
    /// Open a new connection to the server (the transport knows the URL).
    Dial,
    /// Write this text frame to the open connection.
    Send(Bytes),
    /// Close the open connection, or abandon the dial in progress.
    Close,
    Event(ClientEvent),
}

/// Bounds of the automatic reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The backoff of the first attempt; each next attempt doubles it, up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Attempts before giving up (Close); 0 never gives up.
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy { min_delay: Duration::from_millis(250), max_delay: Duration::from_secs(10), max_attempts: 0 }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt `attempt` (1-based): half the exponential backoff, plus a random
    /// share of the other half ("equal jitter"), so that many clients dropped together do not
    /// return together, and no client returns sooner than half its backoff.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let doubling = attempt.saturating_sub(1).min(32);
        let backoff = self.min_delay.saturating_mul(1u32 << doubling.min(31)).min(self.max_delay);
        let half = backoff / 2;
        let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        // Saturating: a half beyond u64::MAX nanoseconds (~584 years) must not overflow to 0.
        let jitter = if half_nanos == 0 { 0 } else { random % half_nanos.saturating_add(1) };
        half + Duration::from_nanos(jitter)
    }
}

/// How the client speaks and behaves.
#[derive(Debug, Clone)]
pub struct ClientCoreConfig {
    /// The version sent in `krmx/link`; the server accepts the same major.minor.
    pub protocol_version: String,
    /// Reconnect automatically when the connection drops; `None` turns it off.
    pub reconnect: Option<ReconnectPolicy>,
    /// Seeds the jitter, so that tests are repeatable.
    pub jitter_seed: u64,
}

impl Default for ClientCoreConfig {
    fn default() -> Self {
        ClientCoreConfig { protocol_version: DEFAULT_PROTOCOL_VERSION.to_string(), reconnect: None, jitter_seed: 1 }
    }
}

/// Why an action of the host was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientActionError {
    WrongStatus { action: &'static str, status: ClientStatus },
    ReservedType,
}

impl fmt::Display for ClientActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientActionError::WrongStatus { action, status } => write!(f, "cannot {action} when the client is {status}"),
            ClientActionError::ReservedType => {
                f.write_str("cannot send custom messages with a type starting with the internal 'krmx/' prefix")
            }
        }
    }
}

impl std::error::Error for ClientActionError {}

/// What the transport is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Idle,
    Dialing,
    Open,
}

/// The link the host asked for, remembered so that a reconnect can restore it.
#[derive(Debug, Clone)]
struct LinkIntent {
    username: String,
    auth: Option<String>,
}

/// A reconnect in progress.
#[derive(Debug, Clone, Copy)]
struct Reconnect {
    /// The attempt that is waiting or under way (1-based).
    attempt: u32,
    /// When the waiting attempt starts; `None` once it has started.
    due: Option<Instant>,
}

/// The Krmx client state machine.
pub struct ClientCore {
    config: ClientCoreConfig,
    status: ClientStatus,
    transport: Transport,
    /// A connection was opened since the host's `connect`: only then does a drop reconnect (a first
    /// connect that fails is most likely a wrong URL, and the host should hear so at once).
    was_open: bool,
    intent: Option<LinkIntent>,
    /// Own username while linking or linked.
    username: Option<String>,
    users: IndexMap<String, bool>,
    reconnect: Option<Reconnect>,
    random: u64,
    outputs: VecDeque<ClientOutput>,
}

impl ClientCore {
    pub fn new(config: ClientCoreConfig) -> Self {
        // xorshift needs a non-zero state; any other seed is used as is, so that different seeds
        // give different jitter (`seed | 1` would make 6 and 7 the same).
        let random = if config.jitter_seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { config.jitter_seed };
        ClientCore {
            config,
            status: ClientStatus::Initializing,
            transport: Transport::Idle,
            was_open: false,
            intent: None,
            username: None,
            users: IndexMap::new(),
            reconnect: None,
            random,
            outputs: VecDeque::new(),
        }
    }

    pub fn status(&self) -> ClientStatus {
        self.status
    }

    /// Own username while linking or linked.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Known users in join order, as `(username, is_linked)`; empty unless linked.
    pub fn users(&self) -> impl Iterator<Item = (&str, bool)> {
        self.users.iter().map(|(name, linked)| (name.as_str(), *linked))
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn user_at(&self, index: usize) -> Option<(&str, bool)> {
        self.users.get_index(index).map(|(name, linked)| (name.as_str(), *linked))
    }

    /// The next thing to carry out, in order.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// When `tick` next has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.reconnect.and_then(|r| r.due)
    }

    fn refuse(&self, action: &'static str) -> ClientActionError {
        ClientActionError::WrongStatus { action, status: self.status }
    }

    fn emit(&mut self, event: ClientEvent) {
        self.outputs.push_back(ClientOutput::Event(event));
    }

    fn send(&mut self, message: &Message) {
        self.outputs.push_back(ClientOutput::Send(message.to_frame()));
    }

    // ---- the host's actions ----

    /// Starts connecting (from initializing, or closed to connect again).
    pub fn connect(&mut self) -> Result<(), ClientActionError> {
        if !matches!(self.status, ClientStatus::Initializing | ClientStatus::Closed) {
            return Err(self.refuse("connect"));
        }
        self.status = ClientStatus::Connecting;
        self.was_open = false;
        self.dial();
        Ok(())
    }

    fn dial(&mut self) {
        self.transport = Transport::Dialing;
        self.outputs.push_back(ClientOutput::Dial);
    }

    /// Asks the server to link this connection to `username`.
    pub fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientActionError> {
        if self.status != ClientStatus::Connected {
            return Err(self.refuse("link"));
        }
        self.intent = Some(LinkIntent { username: username.to_string(), auth: auth.map(str::to_string) });
        self.send_link();
        Ok(())
    }

    fn send_link(&mut self) {
        let Some(intent) = self.intent.clone() else { return };
        self.status = ClientStatus::Linking;
        self.username = Some(intent.username.clone());
        self.send(&krmx::link(&intent.username, &self.config.protocol_version, intent.auth.as_deref()));
    }

    /// Asks the server to unlink this connection (the user stays known to the server).
    pub fn unlink(&mut self) -> Result<(), ClientActionError> {
        self.release("unlink", krmx::unlink())
    }

    /// Asks the server to make this user leave.
    pub fn leave(&mut self) -> Result<(), ClientActionError> {
        self.release("leave", krmx::leave())
    }

    fn release(&mut self, action: &'static str, message: Message) -> Result<(), ClientActionError> {
        if self.status != ClientStatus::Linked {
            return Err(self.refuse(action));
        }
        self.intent = None;
        self.status = ClientStatus::Unlinking;
        self.send(&message);
        Ok(())
    }

    /// Sends a custom message; only while linked, and never with a `krmx/` type.
    pub fn send_message(&mut self, message: &Message) -> Result<(), ClientActionError> {
        if message.is_reserved() {
            return Err(ClientActionError::ReservedType);
        }
        if self.status != ClientStatus::Linked {
            return Err(self.refuse("send"));
        }
        self.send(message);
        Ok(())
    }

    /// Closes the connection (or stops reconnecting); a Close event follows.
    pub fn disconnect(&mut self) -> Result<(), ClientActionError> {
        if matches!(self.status, ClientStatus::Initializing | ClientStatus::Closing | ClientStatus::Closed) {
            return Err(self.refuse("disconnect"));
        }
        self.intent = None;
        self.reconnect = None;
        match self.transport {
            Transport::Idle => self.close_for_good("disconnected by the client".to_string()),
            Transport::Dialing | Transport::Open => {
                self.status = ClientStatus::Closing;
                self.outputs.push_back(ClientOutput::Close);
            }
        }
        Ok(())
    }

    // ---- the transport's news ----

    /// The connection opened.
    pub fn opened(&mut self) {
        if self.transport != Transport::Dialing {
            return;
        }
        self.transport = Transport::Open;
        if self.status == ClientStatus::Closing {
            // The host disconnected while dialing; the Close output is on its way.
            return;
        }
        self.was_open = true;
        self.status = ClientStatus::Connected;
        self.emit(ClientEvent::Connect);
        if self.reconnect.is_some() {
            if self.intent.is_some() {
                self.send_link();
            } else {
                self.back();
            }
        }
    }

    fn back(&mut self) {
        self.reconnect = None;
        self.emit(ClientEvent::Reconnect);
    }

    /// A frame from the server.
    pub fn frame(&mut self, data: &[u8], now: Instant) {
        self.message(Message::parse(data), now);
    }

    /// A frame from the server, already parsed with [`Message::parse`] (`None`: not a message).
    pub fn message(&mut self, message: Option<Message>, now: Instant) {
        // Frames are only read while connected; a frame that is not a Krmx message is ignored
        // (the reference client would throw; a game client should not).
        if self.transport != Transport::Open || self.status == ClientStatus::Closing {
            return;
        }
        let Some(message) = message else { return };
        if !message.is_reserved() {
            if self.status == ClientStatus::Linked || self.status == ClientStatus::Unlinking {
                self.emit(ClientEvent::Message { message });
            }
            return;
        }
        let username = || -> Option<String> {
            match message.payload.as_ref()?.get("username")? {
                Value::String(name) => Some(name.clone()),
                _ => None,
            }
        };
        match message.kind.as_str() {
            // A server sends these only to a linked connection; out of turn, they must not fill
            // the table of a client that is not linked ("empty unless linked").
            krmx::JOINED | krmx::LINKED if !matches!(self.status, ClientStatus::Linked | ClientStatus::Unlinking) => {}
            krmx::ACCEPTED => self.accepted(),
            krmx::REJECTED => {
                let reason = match message.payload.as_ref().and_then(|p| p.get("reason")) {
                    Some(Value::String(reason)) => reason.clone(),
                    _ => "rejected without a reason".to_string(),
                };
                self.rejected(reason, now);
            }
            krmx::JOINED => {
                if let Some(name) = username() {
                    let is_self = self.username.as_deref() == Some(name.as_str());
                    // Moved to the end: after accepted, the table holds only ourselves, and the
                    // joined messages that follow (step 4) list every user in join order, ourselves
                    // included; keeping our first place would put us before the users who joined
                    // earlier.
                    self.users.shift_remove(&name);
                    self.users.insert(name.clone(), is_self);
                    self.emit(ClientEvent::Join { username: name });
                }
            }
            krmx::LINKED => {
                if let Some(name) = username() {
                    self.users.insert(name.clone(), true);
                    self.emit(ClientEvent::Link { username: name });
                }
            }
            krmx::UNLINKED => {
                if let Some(name) = username() {
                    if self.username.as_deref() == Some(name.as_str()) {
                        // Unlinked: at our request (the intent is already gone), or the server's.
                        // The intent survives the server's unlink: a server that shuts down
                        // unlinks (and removes) every user before it closes, and its users should
                        // come back when it does. The host's next link, unlink, leave or
                        // disconnect decides otherwise.
                        self.status = ClientStatus::Connected;
                        self.users.clear();
                        self.username = None;
                    } else if let Some(linked) = self.users.get_mut(&name) {
                        *linked = false;
                    }
                    self.emit(ClientEvent::Unlink { username: name });
                }
            }
            krmx::LEFT => {
                if let Some(name) = username() {
                    self.users.shift_remove(&name);
                    self.emit(ClientEvent::Leave { username: name });
                }
            }
            _ => {}
        }
    }

    fn accepted(&mut self) {
        // Linking without a username is waiting to retry a stale re-link: no request is out, so
        // there is nothing to accept (it would leave the client linked without a name).
        if self.status != ClientStatus::Linking || self.username.is_none() {
            return;
        }
        self.status = ClientStatus::Linked;
        self.users.clear();
        if let Some(name) = &self.username {
            self.users.insert(name.clone(), true);
        }
        self.emit(ClientEvent::Accept);
        if self.reconnect.is_some() {
            self.back();
        }
    }

    fn rejected(&mut self, reason: String, now: Instant) {
        // "unlinked connection" never answers a link request (PROTOCOL.md step 2): it answers an
        // unlink, leave or message sent before the server's unlink reached us, and must not be
        // taken for the answer to the link that followed (the server may accept that one).
        if self.status != ClientStatus::Linking || reason == REASON_UNLINKED_CONNECTION {
            return;
        }
        self.username = None;
        if self.reconnect.is_some() && self.intent.as_ref().is_some_and(|i| is_stale_link(&reason, &i.username)) {
            // The server has not yet noticed that our old connection is gone: try again later.
            // The status stays linking, so the host cannot start a link of its own meanwhile.
            self.schedule_reconnect(reason, now);
            return;
        }
        self.status = ClientStatus::Connected;
        self.intent = None;
        self.reconnect = None;
        self.emit(ClientEvent::Reject { reason });
    }

    /// The connection closed, or the dial failed. `why` is for humans.
    pub fn closed(&mut self, why: String, now: Instant) {
        if self.transport == Transport::Idle {
            return;
        }
        self.transport = Transport::Idle;
        self.users.clear();
        self.username = None;
        let policy_allows = self.config.reconnect.is_some() && self.was_open;
        if self.status == ClientStatus::Closing || !policy_allows {
            let why = if self.status == ClientStatus::Closing { "disconnected by the client".to_string() } else { why };
            self.close_for_good(why);
            return;
        }
        self.status = ClientStatus::Connecting;
        self.schedule_reconnect(why, now);
    }

    /// Waits for the next attempt, or gives up when the policy says so.
    fn schedule_reconnect(&mut self, why: String, now: Instant) {
        let Some(policy) = self.config.reconnect.clone() else { return };
        let attempt = self.reconnect.map_or(1, |r| r.attempt + 1);
        if policy.max_attempts > 0 && attempt > policy.max_attempts {
            self.intent = None;
            self.reconnect = None;
            if self.transport == Transport::Idle {
                self.close_for_good(format!("gave up reconnecting after {} attempts: {why}", policy.max_attempts));
            } else {
                // Connected, but the server keeps holding the old link.
                self.status = ClientStatus::Connected;
                self.emit(ClientEvent::Reject { reason: why });
            }
            return;
        }
        let delay = policy.delay(attempt, self.next_random());
        // A delay past what an Instant can hold (only reachable from Rust) means: a day.
        let due = now.checked_add(delay).unwrap_or(now + Duration::from_secs(86_400));
        self.reconnect = Some(Reconnect { attempt, due: Some(due) });
        self.emit(ClientEvent::Reconnecting { attempt, delay, why });
    }

    /// The passing of time: starts a reconnect attempt that is due.
    pub fn tick(&mut self, now: Instant) {
        let Some(reconnect) = &mut self.reconnect else { return };
        if reconnect.due.is_none_or(|due| now < due) {
            return;
        }
        reconnect.due = None;
        match self.transport {
            Transport::Idle => self.dial(),
            // Still connected after a refused re-link: ask again.
            Transport::Dialing | Transport::Open => self.send_link(),
        }
    }

    fn close_for_good(&mut self, why: String) {
        self.status = ClientStatus::Closed;
        self.transport = Transport::Idle;
        self.users.clear();
        self.username = None;
        self.intent = None;
        self.reconnect = None;
        self.emit(ClientEvent::Close { why });
    }

    /// xorshift64*: plenty for jitter, and repeatable from the seed.
    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The server's answer to anything but a link request from an unlinked connection.
const REASON_UNLINKED_CONNECTION: &str = "unlinked connection";

/// Whether a rejection says that the server still holds `username`'s old link.
fn is_stale_link(reason: &str, username: &str) -> bool {
    reason == format!("user {username} is already linked to a connection")
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
