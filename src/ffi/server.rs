//! The server's C API: `krmx_server_*`.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::event::{poll_into, EventStrings, KrmxEvent};
use super::handles::{free, live, register, HandleKind};
use super::result::{guard, FfiError, KrmxResult, KrmxResult::*};
use super::strings::{copy_user, custom_message, optional, required};
use crate::proto::requirements::QueryRequirement;
use crate::proto::server::UsernameRule;
use crate::{Server, ServerConfig, ServerStatus};

/// A Krmx server. Opaque: made by `krmx_server_new`, released by `krmx_server_free`.
pub struct KrmxServer {
    server: Server,
    event_strings: Mutex<EventStrings>,
}


/// The server's lifecycle. Numbers are stable.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum KrmxServerStatus {
    KRMX_SERVER_STATUS_INITIALIZING = 0,
    KRMX_SERVER_STATUS_STARTING = 1,
    KRMX_SERVER_STATUS_LISTENING = 2,
    KRMX_SERVER_STATUS_CLOSING = 3,
    KRMX_SERVER_STATUS_CLOSED = 4,
}

/// What a query parameter must be (`KrmxQueryRequirement.kind`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum KrmxQueryKind {
    /// The parameter must be present (any value).
    KRMX_QUERY_PRESENT = 0,
    /// The parameter must be absent.
    KRMX_QUERY_ABSENT = 1,
    /// The parameter must equal `value`.
    KRMX_QUERY_EQUALS = 2,
}

/// One query parameter requirement of `KrmxServerConfig.query`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KrmxQueryRequirement {
    /// The parameter's name. Required.
    pub name: *const c_char,
    /// One of `KrmxQueryKind`.
    pub kind: i32,
    /// For `KRMX_QUERY_EQUALS`: the required value. Otherwise ignored.
    pub value: *const c_char,
}

/// Replaces the default username rule: return true when `username` (NUL-terminated UTF-8) is
/// acceptable. Called on the thread that calls `krmx_server_poll` or `krmx_server_join`, with the
/// `username_rule_data` given in the config. It must not call back into a server: such a call
/// returns KRMX_ERR_WRONG_STATUS (it would otherwise wait for the rule's own caller forever).
pub type KrmxUsernameRule = Option<unsafe extern "C" fn(user_data: *mut c_void, username: *const c_char) -> bool>;

/// How a server behaves. Fill it with `krmx_server_config_default`, then change what you need.
/// Strings are copied by `krmx_server_new`; NULL strings mean "the default".
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KrmxServerConfig {
    /// Address to listen on. NULL: "127.0.0.1". "0.0.0.0" serves every interface.
    pub host: *const c_char,
    /// Only WebSocket connections to this path are accepted. NULL: any path.
    pub path: *const c_char,
    /// Protocol version to speak; clients of the same major.minor may link. NULL: "0.5.5".
    pub protocol_version: *const c_char,
    /// When false, only users created by `krmx_server_join` may link. Default true.
    pub accept_new_users: bool,
    /// When true, every link waits for `krmx_server_authenticate` (KRMX_EVENT_AUTHENTICATE). Default false.
    pub authenticate: bool,
    /// How long a link may wait for that answer before it is rejected with "authentication
    /// timeout". Default 10000.
    pub auth_timeout_ms: u32,
    /// How often connections are pinged; one that misses a ping is closed (its user unlinked).
    /// Default 15000; 0 turns pings off.
    pub ping_interval_ms: u32,
    /// Largest incoming message in bytes; a larger one closes the connection with code 1009.
    /// Default 1048576.
    pub max_message_bytes: u32,
    /// Most bytes waiting to be written to one connection before it is closed as a slow reader.
    /// Default 1048576.
    pub max_queued_bytes: u32,
    /// A peer must finish its WebSocket handshake within this time. Default 10000.
    pub handshake_timeout_ms: u32,
    /// Most bytes of received messages waiting for the host to poll, each counted at four times
    /// its size (it waits parsed); past it the server stops reading sockets until the host
    /// catches up. Default 16777216; never less than one largest message.
    pub event_queue_bytes: u32,
    /// Query parameters every connection's URL must meet; `query_len` entries. May be NULL when 0.
    pub query: *const KrmxQueryRequirement,
    pub query_len: usize,
    /// Optional replacement of the default username rule (NULL: the default rule).
    pub username_rule: KrmxUsernameRule,
    /// Passed to `username_rule` as is.
    pub username_rule_data: *mut c_void,
    /// Most connections open at once, counting those still in their WebSocket handshake; more
    /// are answered with HTTP 503 and closed. Default 10000; must be above 0.
    pub max_connections: u32,
    /// Most connections open at once from one IP address, the same way. Default 0: no cap
    /// (players behind one NAT share an address).
    pub max_connections_per_address: u32,
    /// Most users known at once, linked or not; a link that would add one more is rejected with
    /// "server is full", and `krmx_server_join` fails with KRMX_ERR_LIMIT_REACHED. Default 10000;
    /// must be above 0.
    pub max_users: u32,
    /// A connection that stays unlinked this long (since it opened, or since its user was
    /// unlinked) is closed with the reason "link timeout". Default 30000; 0: never.
    pub link_timeout_ms: u32,
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

/// Writes the defaults into `*config`.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT.
///
/// # Safety
/// `config` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_config_default(config: *mut KrmxServerConfig) -> KrmxResult {
    guard("krmx_server_config_default", || {
        let config = config.as_mut().ok_or_else(|| FfiError::null("config"))?;
        let d = ServerConfig::default();
        *config = KrmxServerConfig {
            host: std::ptr::null(),
            path: std::ptr::null(),
            protocol_version: std::ptr::null(),
            accept_new_users: d.accept_new_users,
            authenticate: d.authenticate,
            auth_timeout_ms: d.auth_timeout.as_millis() as u32,
            ping_interval_ms: d.ping_interval.map_or(0, |p| p.as_millis() as u32),
            max_message_bytes: d.max_message_size as u32,
            max_queued_bytes: d.max_queued_bytes as u32,
            handshake_timeout_ms: d.handshake_timeout.as_millis() as u32,
            event_queue_bytes: d.event_queue_bytes as u32,
            query: std::ptr::null(),
            query_len: 0,
            username_rule: None,
            username_rule_data: std::ptr::null_mut(),
            max_connections: d.max_connections.try_into().unwrap_or(u32::MAX),
            max_connections_per_address: 0,
            max_users: d.max_users.try_into().unwrap_or(u32::MAX),
            link_timeout_ms: d.link_timeout.map_or(0, |t| t.as_millis() as u32),
        };
        Ok(KRMX_OK)
    })
}

/// The host's username callback, carried into the protocol core.
struct ForeignUsernameRule {
    rule: unsafe extern "C" fn(*mut c_void, *const c_char) -> bool,
    data: *mut c_void,
}

// SAFETY: the header documents that the rule is called on the host's calling thread only, with the
// host's own pointer; the library never dereferences `data`.
unsafe impl Send for ForeignUsernameRule {}
unsafe impl Sync for ForeignUsernameRule {}

thread_local! {
    /// How deep this thread is inside username rules: the rule runs while its server is locked,
    /// so a server call from inside it would wait for itself forever.
    static IN_USERNAME_RULE: Cell<u32> = const { Cell::new(0) };
}

impl ForeignUsernameRule {
    fn accepts(&self, username: &str) -> bool {
        // A name with a NUL inside cannot be passed as a C string; no sane rule accepts it.
        let Ok(c_name) = std::ffi::CString::new(username) else { return false };
        IN_USERNAME_RULE.with(|depth| depth.set(depth.get() + 1));
        // SAFETY: the host promised a callable rule; the name is a valid C string for the call.
        let accepted = unsafe { (self.rule)(self.data, c_name.as_ptr()) };
        IN_USERNAME_RULE.with(|depth| depth.set(depth.get() - 1));
        accepted
    }
}

unsafe fn server_config(config: &KrmxServerConfig) -> Result<ServerConfig, FfiError> {
    let invalid = |m: &str| FfiError::new(KRMX_ERR_INVALID_ARGUMENT, m.to_string());
    let mut result = ServerConfig::default();
    if let Some(host) = optional(config.host, "config.host")? {
        result.host = host.to_string();
    }
    result.path = optional(config.path, "config.path")?.map(str::to_string);
    if let Some(version) = optional(config.protocol_version, "config.protocol_version")? {
        if version.is_empty() {
            return Err(invalid("config.protocol_version must not be empty"));
        }
        result.protocol_version = version.to_string();
    }
    result.accept_new_users = config.accept_new_users;
    result.authenticate = config.authenticate;
    result.auth_timeout = millis(config.auth_timeout_ms);
    result.ping_interval = (config.ping_interval_ms > 0).then(|| millis(config.ping_interval_ms));
    if config.max_message_bytes == 0 || config.max_queued_bytes == 0 || config.event_queue_bytes == 0 {
        return Err(invalid("config.max_message_bytes, max_queued_bytes and event_queue_bytes must be above 0"));
    }
    result.max_message_size = config.max_message_bytes as usize;
    result.max_queued_bytes = config.max_queued_bytes as usize;
    result.event_queue_bytes = config.event_queue_bytes as usize;
    result.handshake_timeout = millis(config.handshake_timeout_ms.max(1));
    if config.max_connections == 0 || config.max_users == 0 {
        return Err(invalid("config.max_connections and max_users must be above 0"));
    }
    result.max_connections = config.max_connections as usize;
    result.max_connections_per_address =
        (config.max_connections_per_address > 0).then_some(config.max_connections_per_address as usize);
    result.max_users = config.max_users as usize;
    result.link_timeout = (config.link_timeout_ms > 0).then(|| millis(config.link_timeout_ms));
    if config.query_len > 0 {
        if config.query.is_null() {
            return Err(FfiError::null("config.query (with query_len above 0)"));
        }
        for requirement in std::slice::from_raw_parts(config.query, config.query_len) {
            let name = required(requirement.name, "config.query[].name")?.to_string();
            let kind = match requirement.kind {
                0 => QueryRequirement::Present,
                1 => QueryRequirement::Absent,
                2 => QueryRequirement::Equals(required(requirement.value, "config.query[].value")?.to_string()),
                other => return Err(invalid(&format!("config.query[].kind {other} is not a KrmxQueryKind"))),
            };
            result.query.push((name, kind));
        }
    }
    if let Some(rule) = config.username_rule {
        let foreign = ForeignUsernameRule { rule, data: config.username_rule_data };
        let rule: UsernameRule = Box::new(move |username: &str| foreign.accepts(username));
        result.username_rule = Some(rule);
    }
    Ok(result)
}

/// The live server behind a handle, or the reason there is none (or why it cannot be used now).
unsafe fn handle(server: *const KrmxServer) -> Result<Arc<KrmxServer>, FfiError> {
    if IN_USERNAME_RULE.with(Cell::get) > 0 {
        return Err(FfiError::new(KRMX_ERR_WRONG_STATUS, "a server must not be called from inside its username rule"));
    }
    live(server, HandleKind::Server)
}

/// Creates a server (not yet listening). `config` may be NULL for the defaults; it is copied, so
/// the caller may free it and its strings at once. On success `*out` is the new handle, which the
/// caller owns and releases with `krmx_server_free`.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT (`out`), KRMX_ERR_INVALID_UTF8 (a config string),
/// KRMX_ERR_INVALID_ARGUMENT (a config value out of range).
///
/// # Safety
/// `config` is NULL or a valid config whose pointers are valid for the call; `out` is valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_new(config: *const KrmxServerConfig, out: *mut *mut KrmxServer) -> KrmxResult {
    guard("krmx_server_new", || {
        let out = out.as_mut().ok_or_else(|| FfiError::null("out"))?;
        *out = std::ptr::null_mut();
        let config = match config.as_ref() {
            Some(config) => server_config(config)?,
            None => ServerConfig::default(),
        };
        *out = register(KrmxServer { server: Server::new(config), event_strings: Mutex::default() }, HandleKind::Server);
        Ok(KRMX_OK)
    })
}

/// Starts listening on `port` of the configured host; 0 picks a free port. The socket is bound
/// before this returns, so a taken port fails here; KRMX_EVENT_LISTEN follows on the next poll.
///
/// Errors: KRMX_ERR_IO (port taken, address not local), KRMX_ERR_WRONG_STATUS (already listening).
///
/// # Safety
/// `server` is NULL or a handle from `krmx_server_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_listen(server: *mut KrmxServer, port: u16) -> KrmxResult {
    guard("krmx_server_listen", || {
        handle(server)?.server.listen(port)?;
        Ok(KRMX_OK)
    })
}

/// Writes the port listened on into `*port` (useful after listening on port 0).
///
/// Errors: KRMX_ERR_NULL_ARGUMENT, KRMX_ERR_WRONG_STATUS (not listening yet).
///
/// # Safety
/// `server` as for `krmx_server_listen`; `port` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_port(server: *const KrmxServer, port: *mut u16) -> KrmxResult {
    guard("krmx_server_port", || {
        let server = handle(server)?;
        let port = port.as_mut().ok_or_else(|| FfiError::null("port"))?;
        *port = server.server.port().ok_or_else(|| FfiError::new(KRMX_ERR_WRONG_STATUS, "the server is not listening"))?;
        Ok(KRMX_OK)
    })
}

/// Takes the next event into `*event`, waiting up to `timeout_ms` for one: 0 never waits (call it
/// every frame of a game loop until it returns KRMX_NO_EVENT), a negative value waits as long as
/// it takes. A wait first yields the core for up to 50 microseconds before the thread sleeps
/// (the next message usually comes within them; waking a sleeping thread costs more). The
/// protocol runs inside this call: inputs that arrived are processed now.
/// Returns KRMX_OK when an event was written, KRMX_NO_EVENT when none came in time or
/// `krmx_server_wake` was called (then `event->kind` is KRMX_EVENT_NONE).
/// The event's strings belong to the server and stay valid until the next poll or free of it.
/// Call from one thread at a time.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT, KRMX_ERR_INVALID_HANDLE.
///
/// # Safety
/// `server` as for `krmx_server_listen`; `event` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_poll(server: *mut KrmxServer, event: *mut KrmxEvent, timeout_ms: i32) -> KrmxResult {
    guard("krmx_server_poll", || {
        let server = handle(server)?;
        poll_into(event, timeout_ms, &server.event_strings, |timeout| server.server.poll(timeout), EventStrings::server_event)
    })
}

/// Makes a `krmx_server_poll` that is waiting (or the next one) return KRMX_NO_EVENT at once.
/// The one function that is meant to be called from another thread than the polling one.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT, KRMX_ERR_INVALID_HANDLE.
///
/// # Safety
/// `server` as for `krmx_server_listen`.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_wake(server: *mut KrmxServer) -> KrmxResult {
    guard("krmx_server_wake", || {
        handle(server)?.server.waker().wake();
        Ok(KRMX_OK)
    })
}

/// Answers KRMX_EVENT_AUTHENTICATE `request_id`: `accept` true links the connection; false rejects
/// it with `reason` (NULL or "": "authentication failed"). `reason` is copied.
///
/// Errors: KRMX_ERR_UNKNOWN_REQUEST (answered already, timed out, or its connection closed),
/// KRMX_ERR_INVALID_UTF8.
///
/// # Safety
/// `server` as for `krmx_server_listen`; `reason` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_authenticate(
    server: *mut KrmxServer,
    request_id: u64,
    accept: bool,
    reason: *const c_char,
) -> KrmxResult {
    guard("krmx_server_authenticate", || {
        let server = handle(server)?;
        let decision = if accept { Ok(()) } else { Err(optional(reason, "reason")?.map(str::to_string)) };
        server.server.authenticate(request_id, decision)?;
        Ok(KRMX_OK)
    })
}

/// Sends a custom message `{type, payload}` to one linked user. `payload_json` is JSON text, or
/// NULL for a message without payload. Everything is copied before this returns.
///
/// Errors: KRMX_ERR_UNKNOWN_USER, KRMX_ERR_USER_NOT_LINKED, KRMX_ERR_RESERVED_TYPE (`krmx/...`),
/// KRMX_ERR_INVALID_JSON, KRMX_ERR_INVALID_UTF8, KRMX_ERR_WRONG_STATUS (not listening).
///
/// # Safety
/// `server` as for `krmx_server_listen`; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_send(
    server: *mut KrmxServer,
    username: *const c_char,
    message_type: *const c_char,
    payload_json: *const c_char,
) -> KrmxResult {
    guard("krmx_server_send", || {
        let server = handle(server)?;
        let username = required(username, "username")?;
        server.server.send(username, &custom_message(message_type, payload_json)?)?;
        Ok(KRMX_OK)
    })
}

/// Sends a custom message to every linked user except `skip_username` (NULL: skip no one).
/// The message is serialized once and shared by every recipient.
///
/// Errors: as `krmx_server_send`, without the user errors.
///
/// # Safety
/// As for `krmx_server_send`.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_broadcast(
    server: *mut KrmxServer,
    message_type: *const c_char,
    payload_json: *const c_char,
    skip_username: *const c_char,
) -> KrmxResult {
    guard("krmx_server_broadcast", || {
        let server = handle(server)?;
        let skip = optional(skip_username, "skip_username")?;
        server.server.broadcast(&custom_message(message_type, payload_json)?, skip)?;
        Ok(KRMX_OK)
    })
}

/// Creates an unlinked user; every linked user is told (`krmx/joined`) and KRMX_EVENT_JOIN follows.
///
/// Errors: KRMX_ERR_USER_EXISTS, KRMX_ERR_INVALID_USERNAME, KRMX_ERR_WRONG_STATUS.
///
/// # Safety
/// As for `krmx_server_send`.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_join(server: *mut KrmxServer, username: *const c_char) -> KrmxResult {
    guard("krmx_server_join", || {
        handle(server)?.server.join(required(username, "username")?)?;
        Ok(KRMX_OK)
    })
}

/// Unlinks a user from its connection (which stays open and may link again).
///
/// Errors: KRMX_ERR_UNKNOWN_USER, KRMX_ERR_USER_NOT_LINKED, KRMX_ERR_WRONG_STATUS.
///
/// # Safety
/// As for `krmx_server_send`.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_unlink(server: *mut KrmxServer, username: *const c_char) -> KrmxResult {
    guard("krmx_server_unlink", || {
        handle(server)?.server.unlink(required(username, "username")?)?;
        Ok(KRMX_OK)
    })
}

/// Makes a user leave (unlinking it first when linked).
///
/// Errors: KRMX_ERR_UNKNOWN_USER, KRMX_ERR_WRONG_STATUS.
///
/// # Safety
/// As for `krmx_server_send`.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_kick(server: *mut KrmxServer, username: *const c_char) -> KrmxResult {
    guard("krmx_server_kick", || {
        handle(server)?.server.kick(required(username, "username")?)?;
        Ok(KRMX_OK)
    })
}

/// Writes the number of users into `*count`. Users are numbered 0..count in join order, as of the
/// events polled so far.
///
/// # Safety
/// `server` as for `krmx_server_listen`; `count` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_user_count(server: *const KrmxServer, count: *mut usize) -> KrmxResult {
    guard("krmx_server_user_count", || {
        let server = handle(server)?;
        *count.as_mut().ok_or_else(|| FfiError::null("count"))? = server.server.user_count();
        Ok(KRMX_OK)
    })
}

/// Copies user `index`'s name (NUL-terminated) into `username` (`capacity` bytes), its length into
/// `*username_len` (may be NULL) and whether it is linked into `*is_linked` (may be NULL).
/// 33 bytes hold any name of the default username rule.
///
/// Errors: KRMX_ERR_INVALID_ARGUMENT (index out of range), KRMX_ERR_BUFFER_TOO_SMALL (the needed
/// length is still written to `*username_len`), KRMX_ERR_NULL_ARGUMENT (`username`).
///
/// # Safety
/// `username` is valid for `capacity` bytes; the out pointers are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_user(
    server: *const KrmxServer,
    index: usize,
    username: *mut c_char,
    capacity: usize,
    username_len: *mut usize,
    is_linked: *mut bool,
) -> KrmxResult {
    guard("krmx_server_user", || {
        let user = handle(server)?.server.user(index);
        copy_user(user, index, username, capacity, username_len, is_linked)?;
        Ok(KRMX_OK)
    })
}

/// Writes the server's status into `*status` (one of `KrmxServerStatus`).
///
/// # Safety
/// `server` as for `krmx_server_listen`; `status` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_status(server: *const KrmxServer, status: *mut KrmxServerStatus) -> KrmxResult {
    guard("krmx_server_status", || {
        let server = handle(server)?;
        let status = status.as_mut().ok_or_else(|| FfiError::null("status"))?;
        *status = match server.server.status() {
            ServerStatus::Initializing => KrmxServerStatus::KRMX_SERVER_STATUS_INITIALIZING,
            ServerStatus::Starting => KrmxServerStatus::KRMX_SERVER_STATUS_STARTING,
            ServerStatus::Listening => KrmxServerStatus::KRMX_SERVER_STATUS_LISTENING,
            ServerStatus::Closing => KrmxServerStatus::KRMX_SERVER_STATUS_CLOSING,
            ServerStatus::Closed => KrmxServerStatus::KRMX_SERVER_STATUS_CLOSED,
        };
        Ok(KRMX_OK)
    })
}

/// Closes the server: every user leaves (linked users are told), then every connection closes
/// and the port is released. Poll until KRMX_EVENT_CLOSE to see it finish.
///
/// Errors: KRMX_ERR_WRONG_STATUS (not listening, or already closing).
///
/// # Safety
/// `server` as for `krmx_server_listen`.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_close(server: *mut KrmxServer) -> KrmxResult {
    guard("krmx_server_close", || {
        handle(server)?.server.close()?;
        Ok(KRMX_OK)
    })
}

/// Releases a server, and waits until everything it opened is closed: when this returns, the
/// listening socket is closed (the port may be listened on again at once) and so is every
/// connection (each peer got the frames already queued, then close code 1001 "going away"). That
/// takes milliseconds; a peer that stopped reading gets up to 500 ms; never more than 2 s in all.
/// Users are not unlinked one by one and the host is not told (no events). Strings of the last
/// event become invalid. NULL is a no-op; a handle that was already freed (or is not a handle of
/// this kind) gives KRMX_ERR_INVALID_HANDLE.
///
/// # Safety
/// `server` is NULL or a handle from `krmx_server_new`; it must not be used again.
#[no_mangle]
pub unsafe extern "C" fn krmx_server_free(server: *mut KrmxServer) -> KrmxResult {
    guard("krmx_server_free", || {
        free(server, HandleKind::Server, |handle| handle.server.waker().wake())?;
        Ok(KRMX_OK)
    })
}
