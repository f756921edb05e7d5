//! The Krmx server as a state machine: PROTOCOL.md "Server behaviour", steps 1 to 11.
//!
//! Inputs: a connection opened, a frame arrived, a connection closed, the host's authentication
//! answer, the passing of time, and the host's own actions (join, unlink, kick, send, broadcast).
//! Outputs ([`Output`]): frames to write to connections, connections to close, and events for the
//! application, in exactly the order the protocol prescribes.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;

use super::id_map::IdMap;
use super::link_timer::LinkTimers;
use super::message::{krmx, Message};
use super::username::is_valid_username;
use super::version::{check_client_version, DEFAULT_PROTOCOL_VERSION};

/// Identifies one WebSocket connection for the lifetime of a server.
pub type ConnectionId = u64;

/// Replaces the default username rule.
pub type UsernameRule = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// How the server decides links.
pub struct ServerCoreConfig {
    /// The version the server speaks; clients of the same `major.minor` may link.
    pub protocol_version: String,
    /// When false, only users created by the host's `join` may link.
    pub accept_new_users: bool,
    /// When true, every link request that passes the protocol's checks is put to the host as an
    /// [`ServerEvent::Authenticate`]; the host answers with [`ServerCore::authenticate`].
    pub authenticate: bool,
    /// How long the host may take to answer; then the link is rejected with `authentication timeout`.
    pub auth_timeout: Duration,
    /// Replaces the default username rule when set.
    pub username_rule: Option<UsernameRule>,
    /// Most users known at once (linked or not); a link that would add one more is rejected with
    /// `server is full`, and the host's `join` fails.
    pub max_users: usize,
    /// A connection that stays unlinked this long (since it opened or was unlinked) is closed
    /// with the reason `link timeout`. `None`: never.
    pub link_timeout: Option<Duration>,
}

impl Default for ServerCoreConfig {
    fn default() -> Self {
        ServerCoreConfig {
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_string(),
            accept_new_users: true,
            authenticate: false,
            auth_timeout: Duration::from_secs(10),
            username_rule: None,
            max_users: usize::MAX,
            link_timeout: None,
        }
    }
}

impl fmt::Debug for ServerCoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCoreConfig")
            .field("protocol_version", &self.protocol_version)
            .field("accept_new_users", &self.accept_new_users)
            .field("authenticate", &self.authenticate)
            .field("auth_timeout", &self.auth_timeout)
            .field("username_rule", &self.username_rule.as_ref().map(|_| "custom"))
            .field("max_users", &self.max_users)
            .field("link_timeout", &self.link_timeout)
            .finish()
    }
}

/// The server's lifecycle: initializing → starting → listening → closing → closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStatus {
    Initializing,
    Starting,
    Listening,
    Closing,
    Closed,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Initializing => "initializing",
            ServerStatus::Starting => "starting",
            ServerStatus::Listening => "listening",
            ServerStatus::Closing => "closing",
            ServerStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the application is told.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Listen { port: u16 },
    /// A link request awaits the host's decision (only when authentication is enabled).
    Authenticate { request_id: u64, username: String, is_new_user: bool, auth: Option<String> },
    Join { username: String },
    Link { username: String },
    Unlink { username: String },
    Leave { username: String },
    Message { username: String, message: Message },
    Close,
}

/// One step of work for whoever drives the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write this text frame to the connection.
    Send { to: ConnectionId, frame: Bytes },
    /// Close the connection, telling the peer `reason` (may be empty); its `connection_closed`
    /// input will follow.
    Close { connection: ConnectionId, reason: &'static str },
    /// Tell the application.
    Event(ServerEvent),
}

/// A user as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub is_linked: bool,
}

impl From<(&str, bool)> for User {
    /// From a user table entry as the cores list them.
    fn from((username, is_linked): (&str, bool)) -> Self {
        User { username: username.to_string(), is_linked }
    }
}

/// Why a host action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// The action is not possible in the server's current status.
    WrongStatus { action: &'static str, status: ServerStatus },
    UnknownUser(String),
    UserNotLinked(String),
    UserExists(String),
    InvalidUsername(String),
    ReservedType,
    UnknownRequest(u64),
    /// The server already has its configured most users.
    TooManyUsers(usize),
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::WrongStatus { action, status } => {
                write!(f, "cannot {action} when the server is {status}")
            }
            ActionError::UnknownUser(u) => write!(f, "user {u} does not exist"),
            ActionError::UserNotLinked(u) => write!(f, "user {u} is not linked to a connection"),
            ActionError::UserExists(u) => write!(f, "user {u} already exists"),
            ActionError::InvalidUsername(u) => write!(f, "{u:?} is not a valid username"),
            ActionError::ReservedType => f.write_str(
                "cannot send messages with a type starting with the internal 'krmx/' prefix",
            ),
            ActionError::UnknownRequest(id) => write!(
                f,
                "authentication request {id} is not pending (already answered, timed out, or its connection closed)"
            ),
            ActionError::TooManyUsers(max) => write!(f, "the server already has its most users ({max})"),
        }
    }
}

impl std::error::Error for ActionError {}

#[derive(Debug, Default)]
struct Connection {
    username: Option<String>,
    pending_request: Option<u64>,
}

#[derive(Debug)]
struct PendingLink {
    connection: ConnectionId,
    username: String,
    deadline: Instant,
}

/// A known user: its linked connection, if any, and the presence frames that name it, serialized
/// once when it joins (a link sends the whole table to the new connection: N frames per link, N²
/// in all, so they must cost no more than a copy of a pointer).
#[derive(Debug)]
struct UserEntry {
    connection: Option<ConnectionId>,
    joined_frame: Bytes,
    linked_frame: Bytes,
}

/// The Krmx server state machine.
pub struct ServerCore {
    config: ServerCoreConfig,
    status: ServerStatus,
    /// Users in join order; the value is the linked connection, if any.
    users: IndexMap<String, UserEntry>,
    connections: IdMap<Connection>,
    pending: BTreeMap<u64, PendingLink>,
    link_timers: LinkTimers,
    next_request_id: u64,
    outputs: VecDeque<Output>,
}

const REASON_INVALID_MESSAGE: &str = "invalid message";
const REASON_UNLINKED_CONNECTION: &str = "unlinked connection";
const REASON_INVALID_LINK_REQUEST: &str = "invalid link request";
const REASON_INVALID_USERNAME: &str = "invalid username";
const REASON_NOT_ACCEPTING: &str = "server is not accepting new users";
const REASON_FULL: &str = "server is full";
/// The close reason of a connection that did not link in time.
pub const REASON_LINK_TIMEOUT: &str = "link timeout";
const REASON_AUTH_TIMEOUT: &str = "authentication timeout";
const REASON_AUTH_FAILED: &str = "authentication failed";
const REASON_LINK_PENDING: &str = "a link request of this connection is already pending";

impl ServerCore {
    pub fn new(config: ServerCoreConfig) -> Self {
        ServerCore {
            link_timers: LinkTimers::new(config.link_timeout),
            config,
            status: ServerStatus::Initializing,
            users: IndexMap::new(),
            connections: IdMap::default(),
            pending: BTreeMap::new(),
            next_request_id: 1,
            outputs: VecDeque::new(),
        }
    }

    pub fn status(&self) -> ServerStatus {
        self.status
    }

    pub fn config(&self) -> &ServerCoreConfig {
        &self.config
    }

    /// The next output to carry out, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Users in join order.
    pub fn users(&self) -> impl ExactSizeIterator<Item = (&str, bool)> + '_ {
        self.users.iter().map(|(name, user)| (name.as_str(), user.connection.is_some()))
    }

    /// The user at `index` in join order.
    pub fn user_at(&self, index: usize) -> Option<(&str, bool)> {
        self.users.get_index(index).map(|(name, user)| (name.as_str(), user.connection.is_some()))
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The number of open connections, linked or not.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The user linked to `connection`, if any.
    pub fn connection_user(&self, connection: ConnectionId) -> Option<&str> {
        self.connections.get(&connection)?.username.as_deref()
    }

    /// The connection `username` is linked to, if any.
    pub fn user_connection(&self, username: &str) -> Option<ConnectionId> {
        self.users.get(username)?.connection
    }

    /// Link time limits running (armed or waiting for the next `tick`).
    pub fn link_timer_count(&self) -> usize {
        self.link_timers.len()
    }

    /// Link requests waiting for the host's authentication answer.
    pub fn pending_link_count(&self) -> usize {
        self.pending.len()
    }

    /// The earliest moment [`ServerCore::tick`] has work to do (an authentication deadline or a
    /// link time limit).
    pub fn next_deadline(&self) -> Option<Instant> {
        let auth = self.pending.values().map(|p| p.deadline).min();
        match (auth, self.link_timers.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- lifecycle --------------------------------------------------------------------------

    /// The host asked to listen; the socket is being bound.
    pub fn starting(&mut self) -> Result<(), ActionError> {
        self.can_only("start listening", &[ServerStatus::Initializing])?;
        self.status = ServerStatus::Starting;
        Ok(())
    }

    /// The socket is bound and accepting.
    pub fn listening(&mut self, port: u16) {
        self.status = ServerStatus::Listening;
        self.emit(ServerEvent::Listen { port });
    }

    /// Binding failed: back to initializing, so the host may try again.
    pub fn listen_failed(&mut self) {
        self.status = ServerStatus::Initializing;
    }

    /// Step 9, close: every user leaves, then every connection is closed.
    pub fn begin_close(&mut self) -> Result<(), ActionError> {
        self.can_only("close", &[ServerStatus::Starting, ServerStatus::Listening])?;
        self.status = ServerStatus::Closing;
        let usernames: Vec<String> = self.users.keys().cloned().collect();
        for username in usernames {
            self.leave(&username);
        }
        self.pending.clear();
        let mut ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        ids.sort_unstable();
        for connection in ids {
            self.link_timers.stop(connection);
            self.outputs.push_back(Output::Close { connection, reason: "" });
        }
        Ok(())
    }

    /// Every socket is closed and the listener stopped.
    pub fn closed(&mut self) {
        if self.status != ServerStatus::Closed {
            self.status = ServerStatus::Closed;
            self.connections.clear();
            self.link_timers = LinkTimers::new(self.config.link_timeout);
            self.emit(ServerEvent::Close);
        }
    }

    // ----- connection inputs ------------------------------------------------------------------

    pub fn connection_opened(&mut self, connection: ConnectionId) {
        if self.status != ServerStatus::Listening {
            // A connection that raced with close is refused.
            self.outputs.push_back(Output::Close { connection, reason: "" });
        } else {
            self.link_timers.start(connection);
        }
        self.connections.insert(connection, Connection::default());
    }

    /// Step 8 (nothing for an unlinked connection) and step 6 (a linked one unlinks).
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        if let Some(username) = self.linked_username(connection) {
            self.unlink_user(&username);
        }
        self.link_timers.stop(connection);
        if let Some(state) = self.connections.remove(&connection) {
            if let Some(request) = state.pending_request {
                self.pending.remove(&request);
            }
        }
    }

    /// One frame (text, or binary holding UTF-8 JSON) from a connection.
    pub fn frame(&mut self, connection: ConnectionId, frame: &[u8], now: Instant) {
        self.message(connection, Message::parse(frame), now);
    }

    /// One frame from a connection, already parsed with [`Message::parse`] (`None`: not a
    /// message). The I/O threads parse, so the host's thread does not.
    pub fn message(&mut self, connection: ConnectionId, message: Option<Message>, now: Instant) {
        if self.status != ServerStatus::Listening || !self.connections.contains_key(&connection) {
            return;
        }
        match (message, self.linked_username(connection)) {
            // Step 1: invalid messages.
            (None, Some(username)) => self.unlink_user(&username),
            (None, None) => self.reject(connection, REASON_INVALID_MESSAGE),
            // Step 5: a linked connection.
            (Some(message), Some(username)) => self.linked_message(username, message),
            // Steps 2 and 3: an unlinked connection.
            (Some(message), None) => self.unlinked_message(connection, message, now),
        }
    }

    /// The host's answer to an [`ServerEvent::Authenticate`]: `Ok` accepts, `Err(reason)` rejects
    /// (`None` gives the reason `authentication failed`).
    pub fn authenticate(
        &mut self,
        request_id: u64,
        decision: Result<(), Option<String>>,
    ) -> Result<(), ActionError> {
        let Some(pending) = self.pending.remove(&request_id) else {
            return Err(ActionError::UnknownRequest(request_id));
        };
        if let Some(state) = self.connections.get_mut(&pending.connection) {
            state.pending_request = None;
        }
        match decision {
            Err(reason) => {
                let reason = reason.filter(|r| !r.is_empty());
                self.reject(pending.connection, reason.as_deref().unwrap_or(REASON_AUTH_FAILED));
            }
            Ok(()) => {
                // The world may have moved on while the host decided: check again.
                match self.link_obstacle(&pending.username) {
                    Some(reason) => self.reject(pending.connection, &reason),
                    None => self.accept(pending.connection, pending.username),
                }
            }
        }
        Ok(())
    }

    /// Rejects every link whose authentication deadline has passed, and closes every connection
    /// whose link time is up. Link time limits started since the last input count from `now`.
    pub fn tick(&mut self, now: Instant) {
        self.link_timers.arm(now);
        while let Some(connection) = self.link_timers.pop_expired(now) {
            self.outputs.push_back(Output::Close { connection, reason: REASON_LINK_TIMEOUT });
        }
        while let Some((&id, pending)) = self.pending.iter().find(|(_, p)| p.deadline <= now) {
            let connection = pending.connection;
            self.pending.remove(&id);
            if let Some(state) = self.connections.get_mut(&connection) {
                state.pending_request = None;
            }
            self.reject(connection, REASON_AUTH_TIMEOUT);
        }
    }

    // ----- host actions (step 9) --------------------------------------------------------------

    /// Creates an unlinked user.
    pub fn join(&mut self, username: &str) -> Result<(), ActionError> {
        self.can_only("join a user", &[ServerStatus::Listening])?;
        if self.users.contains_key(username) {
            return Err(ActionError::UserExists(username.to_string()));
        }
        if !self.is_valid_username(username) {
            return Err(ActionError::InvalidUsername(username.to_string()));
        }
        if self.users.len() >= self.config.max_users {
            return Err(ActionError::TooManyUsers(self.config.max_users));
        }
        self.join_user(username);
        Ok(())
    }

    pub fn unlink(&mut self, username: &str) -> Result<(), ActionError> {
        self.can_only("unlink a user", &[ServerStatus::Listening, ServerStatus::Closing])?;
        match self.connection_of(username) {
            None => Err(ActionError::UnknownUser(username.to_string())),
            Some(None) => Err(ActionError::UserNotLinked(username.to_string())),
            Some(Some(_)) => {
                self.unlink_user(username);
                Ok(())
            }
        }
    }

    pub fn kick(&mut self, username: &str) -> Result<(), ActionError> {
        self.can_only("kick a user", &[ServerStatus::Listening])?;
        if !self.users.contains_key(username) {
            return Err(ActionError::UnknownUser(username.to_string()));
        }
        self.leave(username);
        Ok(())
    }

    /// Sends a custom message to one linked user.
    pub fn send(&mut self, username: &str, message: &Message) -> Result<(), ActionError> {
        self.can_only("send a message", &[ServerStatus::Listening, ServerStatus::Closing])?;
        if message.is_reserved() {
            return Err(ActionError::ReservedType);
        }
        match self.connection_of(username) {
            None => Err(ActionError::UnknownUser(username.to_string())),
            Some(None) => Err(ActionError::UserNotLinked(username.to_string())),
            Some(Some(connection)) => {
                let frame = message.to_frame();
                self.outputs.push_back(Output::Send { to: connection, frame });
                Ok(())
            }
        }
    }

    /// Sends a custom message to every linked user but `skip`; serialized once.
    pub fn broadcast(&mut self, message: &Message, skip: Option<&str>) -> Result<(), ActionError> {
        self.can_only("broadcast a message", &[ServerStatus::Listening, ServerStatus::Closing])?;
        if message.is_reserved() {
            return Err(ActionError::ReservedType);
        }
        self.broadcast_frame(message.to_frame(), skip);
        Ok(())
    }

    // ----- the protocol -----------------------------------------------------------------------

    fn unlinked_message(&mut self, connection: ConnectionId, message: Message, now: Instant) {
        if message.kind != krmx::LINK {
            return self.reject(connection, REASON_UNLINKED_CONNECTION);
        }
        if self.connections[&connection].pending_request.is_some() {
            return self.reject(connection, REASON_LINK_PENDING);
        }
        let Some((username, version, auth)) = parse_link_request(message.payload) else {
            return self.reject(connection, REASON_INVALID_LINK_REQUEST);
        };
        if let Some(reason) = check_client_version(&self.config.protocol_version, &version) {
            return self.reject(connection, &reason);
        }
        if !self.is_valid_username(&username) {
            return self.reject(connection, REASON_INVALID_USERNAME);
        }
        if let Some(reason) = self.link_obstacle(&username) {
            return self.reject(connection, &reason);
        }
        if !self.config.authenticate {
            return self.accept(connection, username);
        }
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let is_new_user = !self.users.contains_key(&username);
        self.pending.insert(
            request_id,
            PendingLink { connection, username: username.clone(), deadline: now + self.config.auth_timeout },
        );
        if let Some(state) = self.connections.get_mut(&connection) {
            state.pending_request = Some(request_id);
        }
        self.emit(ServerEvent::Authenticate { request_id, username, is_new_user, auth });
    }

    /// The checks of step 3 that depend on the server's state rather than on the request.
    fn link_obstacle(&self, username: &str) -> Option<String> {
        match self.connection_of(username) {
            None if !self.config.accept_new_users => Some(REASON_NOT_ACCEPTING.to_string()),
            None if self.users.len() >= self.config.max_users => Some(REASON_FULL.to_string()),
            Some(Some(_)) => Some(format!("user {username} is already linked to a connection")),
            _ => None,
        }
    }

    /// Step 4.
    fn accept(&mut self, connection: ConnectionId, username: String) {
        if !self.connections.contains_key(&connection) {
            return;
        }
        self.send_to(connection, krmx::accepted().to_frame());
        if !self.users.contains_key(&username) {
            self.join_user(&username);
        }
        self.link_user(connection, username);
    }

    fn join_user(&mut self, username: &str) {
        let joined_frame = krmx::joined(username).to_frame();
        self.broadcast_frame(joined_frame.clone(), None);
        let linked_frame = krmx::linked(username).to_frame();
        self.users.insert(username.to_string(), UserEntry { connection: None, joined_frame, linked_frame });
        self.emit(ServerEvent::Join { username: username.to_string() });
    }

    fn link_user(&mut self, connection: ConnectionId, username: String) {
        self.link_timers.stop(connection);
        let Some(user) = self.users.get_mut(&username) else { return };
        user.connection = Some(connection);
        let linked_frame = user.linked_frame.clone();
        if let Some(state) = self.connections.get_mut(&connection) {
            state.username = Some(username.clone());
        }
        for user in self.users.values() {
            self.outputs.push_back(Output::Send { to: connection, frame: user.joined_frame.clone() });
            if user.connection.is_some() {
                self.outputs.push_back(Output::Send { to: connection, frame: user.linked_frame.clone() });
            }
        }
        self.broadcast_frame(linked_frame, Some(&username));
        self.emit(ServerEvent::Link { username });
    }

    fn linked_message(&mut self, username: String, message: Message) {
        match message.kind.as_str() {
            krmx::LINK | krmx::UNLINK => self.unlink_user(&username),
            krmx::LEAVE => self.leave(&username),
            _ if message.is_reserved() => self.unlink_user(&username),
            _ => self.emit(ServerEvent::Message { username, message }),
        }
    }

    /// Step 6.
    fn unlink_user(&mut self, username: &str) {
        let Some(Some(connection)) = self.connection_of(username) else { return };
        self.broadcast_frame(krmx::unlinked(username).to_frame(), None);
        if let Some(user) = self.users.get_mut(username) {
            user.connection = None;
        }
        if let Some(state) = self.connections.get_mut(&connection) {
            state.username = None;
            self.link_timers.start(connection);
        }
        self.emit(ServerEvent::Unlink { username: username.to_string() });
    }

    /// Step 7.
    fn leave(&mut self, username: &str) {
        let Some(linked) = self.connection_of(username) else { return };
        let left = krmx::left(username).to_frame();
        if let Some(connection) = linked {
            self.unlink_user(username);
            self.send_to(connection, left.clone());
        }
        self.broadcast_frame(left, None);
        self.users.shift_remove(username);
        self.emit(ServerEvent::Leave { username: username.to_string() });
    }

    fn reject(&mut self, connection: ConnectionId, reason: &str) {
        self.send_to(connection, krmx::rejected(reason).to_frame());
    }

    fn send_to(&mut self, connection: ConnectionId, frame: Bytes) {
        self.outputs.push_back(Output::Send { to: connection, frame });
    }

    /// One frame, shared by every linked user but `skip`.
    fn broadcast_frame(&mut self, frame: Bytes, skip: Option<&str>) {
        for (name, user) in &self.users {
            if let Some(connection) = user.connection {
                if skip != Some(name.as_str()) {
                    self.outputs.push_back(Output::Send { to: connection, frame: frame.clone() });
                }
            }
        }
    }

    fn emit(&mut self, event: ServerEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// `None`: no such user; `Some(None)`: known but not linked.
    fn connection_of(&self, username: &str) -> Option<Option<ConnectionId>> {
        self.users.get(username).map(|user| user.connection)
    }

    fn linked_username(&self, connection: ConnectionId) -> Option<String> {
        self.connections.get(&connection)?.username.clone()
    }

    fn is_valid_username(&self, username: &str) -> bool {
        match &self.config.username_rule {
            Some(rule) => rule(username),
            None => is_valid_username(username),
        }
    }

    fn can_only(&self, action: &'static str, allowed: &[ServerStatus]) -> Result<(), ActionError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(ActionError::WrongStatus { action, status: self.status })
        }
    }
}

/// `(username, version, auth)` of a well-formed `krmx/link` payload (step 3, first check).
fn parse_link_request(
    payload: Option<serde_json::Value>,
) -> Option<(String, String, Option<String>)> {
    use serde_json::Value;
    let Some(Value::Object(mut payload)) = payload else { return None };
    let Some(Value::String(username)) = payload.remove("username") else { return None };
    let Some(Value::String(version)) = payload.remove("version") else { return None };
    let auth = match payload.remove("auth") {
        None => None,
        Some(Value::String(auth)) => Some(auth),
        Some(_) => return None,
    };
    Some((username, version, auth))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
