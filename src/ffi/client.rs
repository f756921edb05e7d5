//! The client's C API: `krmx_client_*` and `krmx_send`.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::event::{poll_into, EventStrings, KrmxEvent};
use super::handles::{free, live, register, HandleKind};
use super::result::{guard, FfiError, KrmxResult, KrmxResult::*};
use super::strings::{copy_out, copy_user, custom_message, optional, required};
use crate::{Client, ClientConfig, ClientStatus, ReconnectPolicy};

/// A Krmx client. Opaque: made by `krmx_client_new`, released by `krmx_client_free`.
pub struct KrmxClient {
    client: Client,
    event_strings: Mutex<EventStrings>,
}


/// The client's lifecycle. Numbers are stable. While reconnecting the client is CONNECTING
/// (waiting or dialing), then LINKING while it re-links.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum KrmxClientStatus {
    KRMX_CLIENT_STATUS_INITIALIZING = 0,
    KRMX_CLIENT_STATUS_CONNECTING = 1,
    KRMX_CLIENT_STATUS_CONNECTED = 2,
    KRMX_CLIENT_STATUS_LINKING = 3,
    KRMX_CLIENT_STATUS_LINKED = 4,
    KRMX_CLIENT_STATUS_UNLINKING = 5,
    KRMX_CLIENT_STATUS_CLOSING = 6,
    KRMX_CLIENT_STATUS_CLOSED = 7,
}

/// How a client behaves. Fill it with `krmx_client_config_default`, then change what you need.
/// Strings are copied by `krmx_client_new`; NULL strings mean "the default".
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KrmxClientConfig {
    /// Protocol version sent when linking; the server accepts the same major.minor. NULL: "0.5.5".
    pub protocol_version: *const c_char,
    /// When true, a connection that drops without `krmx_client_disconnect` is dialed again after
    /// an exponential backoff with jitter, and re-linked with the same username and auth
    /// (KRMX_EVENT_RECONNECTING, then KRMX_EVENT_RECONNECT). A first connect that fails is not
    /// retried. Default false.
    pub reconnect: bool,
    /// Backoff of the first attempt; it doubles per attempt up to `reconnect_max_delay_ms`. The
    /// actual delay is between half the backoff and the full backoff. Default 250.
    pub reconnect_min_delay_ms: u32,
    /// Default 10000.
    pub reconnect_max_delay_ms: u32,
    /// Attempts before giving up with KRMX_EVENT_CLOSE; 0 never gives up. Default 0.
    pub reconnect_max_attempts: u32,
    /// When nothing arrives from the server for this long, the connection is closed (and, with
    /// `reconnect`, dialed again). The client pings at half this interval so that a quiet server
    /// answers. Default 10000; 0 turns the check off.
    pub liveness_timeout_ms: u32,
    /// Resolving, connecting and the WebSocket handshake must finish within this time. Default 10000.
    pub connect_timeout_ms: u32,
    /// Largest incoming message in bytes; a larger one closes the connection. Default 1048576.
    pub max_message_bytes: u32,
    /// Most bytes waiting to be written before the connection is closed as stalled. Default 1048576.
    pub max_queued_bytes: u32,
    /// Most bytes of received messages waiting for the host to poll, each counted at four times
    /// its size (it waits parsed); past it the socket is not read until the host catches up.
    /// Default 16777216; never less than one largest message.
    pub event_queue_bytes: u32,
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

fn as_millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Writes the defaults into `*config`.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT.
///
/// # Safety
/// `config` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_config_default(config: *mut KrmxClientConfig) -> KrmxResult {
    guard("krmx_client_config_default", || {
        let config = config.as_mut().ok_or_else(|| FfiError::null("config"))?;
        let d = ClientConfig::default();
        let policy = ReconnectPolicy::default();
        *config = KrmxClientConfig {
            protocol_version: std::ptr::null(),
            reconnect: d.reconnect.is_some(),
            reconnect_min_delay_ms: as_millis(policy.min_delay),
            reconnect_max_delay_ms: as_millis(policy.max_delay),
            reconnect_max_attempts: policy.max_attempts,
            liveness_timeout_ms: d.liveness_timeout.map_or(0, as_millis),
            connect_timeout_ms: as_millis(d.connect_timeout),
            max_message_bytes: d.max_message_size as u32,
            max_queued_bytes: d.max_queued_bytes as u32,
            event_queue_bytes: d.event_queue_bytes as u32,
        };
        Ok(KRMX_OK)
    })
}

unsafe fn client_config(config: &KrmxClientConfig) -> Result<ClientConfig, FfiError> {
    let invalid = |m: &str| FfiError::new(KRMX_ERR_INVALID_ARGUMENT, m.to_string());
    let mut result = ClientConfig::default();
    if let Some(version) = optional(config.protocol_version, "config.protocol_version")? {
        if version.is_empty() {
            return Err(invalid("config.protocol_version must not be empty"));
        }
        result.protocol_version = version.to_string();
    }
    if config.reconnect {
        if config.reconnect_min_delay_ms > config.reconnect_max_delay_ms {
            return Err(invalid("config.reconnect_min_delay_ms must not be above reconnect_max_delay_ms"));
        }
        result.reconnect = Some(ReconnectPolicy {
            min_delay: millis(config.reconnect_min_delay_ms),
            max_delay: millis(config.reconnect_max_delay_ms),
            max_attempts: config.reconnect_max_attempts,
        });
    }
    result.liveness_timeout = (config.liveness_timeout_ms > 0).then(|| millis(config.liveness_timeout_ms));
    if config.max_message_bytes == 0 || config.max_queued_bytes == 0 || config.event_queue_bytes == 0 {
        return Err(invalid("config.max_message_bytes, max_queued_bytes and event_queue_bytes must be above 0"));
    }
    result.connect_timeout = millis(config.connect_timeout_ms.max(1));
    result.max_message_size = config.max_message_bytes as usize;
    result.max_queued_bytes = config.max_queued_bytes as usize;
    result.event_queue_bytes = config.event_queue_bytes as usize;
    Ok(result)
}

/// The live client behind a handle, or the reason there is none.
unsafe fn handle(client: *const KrmxClient) -> Result<Arc<KrmxClient>, FfiError> {
    live(client, HandleKind::Client)
}

/// Creates a client (not yet connected). `config` may be NULL for the defaults; it is copied. On
/// success `*out` is the new handle, which the caller owns and releases with `krmx_client_free`.
/// Every client in the process shares the library's I/O threads.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT (`out`), KRMX_ERR_INVALID_UTF8 (a config string),
/// KRMX_ERR_INVALID_ARGUMENT (a config value out of range).
///
/// # Safety
/// `config` is NULL or a valid config whose pointers are valid for the call; `out` is valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_new(config: *const KrmxClientConfig, out: *mut *mut KrmxClient) -> KrmxResult {
    guard("krmx_client_new", || {
        let out = out.as_mut().ok_or_else(|| FfiError::null("out"))?;
        *out = std::ptr::null_mut();
        let config = match config.as_ref() {
            Some(config) => client_config(config)?,
            None => ClientConfig::default(),
        };
        *out = register(KrmxClient { client: Client::new(config), event_strings: Mutex::default() }, HandleKind::Client);
        Ok(KRMX_OK)
    })
}

/// Connects to `url`, a `ws://host:port/path?query` URL (copied). Returns at once: poll for
/// KRMX_EVENT_CONNECT, or KRMX_EVENT_CLOSE (with `reason`) when the server cannot be reached.
/// A closed client may connect again.
///
/// Errors: KRMX_ERR_INVALID_ARGUMENT (not a ws:// URL; wss:// is not supported),
/// KRMX_ERR_WRONG_STATUS (not initializing or closed), KRMX_ERR_INVALID_UTF8.
///
/// # Safety
/// `client` is NULL or a handle from `krmx_client_new` not yet freed; `url` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_connect(client: *mut KrmxClient, url: *const c_char) -> KrmxResult {
    guard("krmx_client_connect", || {
        let client = handle(client)?;
        client.client.connect(required(url, "url")?)?;
        Ok(KRMX_OK)
    })
}

/// Asks to link to `username`, with `auth` (NULL: none) for the server's authentication; both are
/// copied. KRMX_EVENT_ACCEPT or KRMX_EVENT_REJECT (with the server's reason) follows.
///
/// Errors: KRMX_ERR_WRONG_STATUS (not connected), KRMX_ERR_NULL_ARGUMENT, KRMX_ERR_INVALID_UTF8.
///
/// # Safety
/// As for `krmx_client_connect`; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_link(client: *mut KrmxClient, username: *const c_char, auth: *const c_char) -> KrmxResult {
    guard("krmx_client_link", || {
        let client = handle(client)?;
        let username = required(username, "username")?;
        client.client.link(username, optional(auth, "auth")?)?;
        Ok(KRMX_OK)
    })
}

/// Asks to unlink; the connection stays open. KRMX_EVENT_UNLINK naming this client follows.
///
/// Errors: KRMX_ERR_WRONG_STATUS (not linked).
///
/// # Safety
/// As for `krmx_client_connect`.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_unlink(client: *mut KrmxClient) -> KrmxResult {
    guard("krmx_client_unlink", || {
        handle(client)?.client.unlink()?;
        Ok(KRMX_OK)
    })
}

/// Asks to leave: the server forgets this user. KRMX_EVENT_UNLINK then KRMX_EVENT_LEAVE naming
/// this client follow; the connection stays open.
///
/// Errors: KRMX_ERR_WRONG_STATUS (not linked).
///
/// # Safety
/// As for `krmx_client_connect`.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_leave(client: *mut KrmxClient) -> KrmxResult {
    guard("krmx_client_leave", || {
        handle(client)?.client.leave()?;
        Ok(KRMX_OK)
    })
}

/// Sends a custom message `{type, payload}` to the server. `payload_json` is JSON text, or NULL for
/// a message without payload. Everything is copied before this returns.
///
/// Errors: KRMX_ERR_WRONG_STATUS (not linked), KRMX_ERR_RESERVED_TYPE (`krmx/...`),
/// KRMX_ERR_INVALID_JSON, KRMX_ERR_NULL_ARGUMENT (`message_type`), KRMX_ERR_INVALID_UTF8.
///
/// # Safety
/// As for `krmx_client_connect`; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn krmx_send(client: *mut KrmxClient, message_type: *const c_char, payload_json: *const c_char) -> KrmxResult {
    guard("krmx_send", || {
        let client = handle(client)?;
        client.client.send(&custom_message(message_type, payload_json)?)?;
        Ok(KRMX_OK)
    })
}

/// Takes the next event into `*event`, waiting up to `timeout_ms` for one: 0 never waits (call it
/// every frame of a game loop until it returns KRMX_NO_EVENT), a negative value waits as long as
/// it takes. A wait first yields the core for up to 50 microseconds before the thread sleeps
/// (the next message usually comes within them; waking a sleeping thread costs more). The
/// protocol runs inside this call, reconnect timers included.
/// Returns KRMX_OK when an event was written, KRMX_NO_EVENT when none came in time or
/// `krmx_client_wake` was called (then `event->kind` is KRMX_EVENT_NONE).
/// The event's strings belong to the client and stay valid until the next poll or free of it.
/// Call from one thread at a time.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT, KRMX_ERR_INVALID_HANDLE.
///
/// # Safety
/// `client` as for `krmx_client_connect`; `event` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_poll(client: *mut KrmxClient, event: *mut KrmxEvent, timeout_ms: i32) -> KrmxResult {
    guard("krmx_client_poll", || {
        let client = handle(client)?;
        poll_into(event, timeout_ms, &client.event_strings, |timeout| client.client.poll(timeout), EventStrings::client_event)
    })
}

/// Makes a `krmx_client_poll` that is waiting (or the next one) return KRMX_NO_EVENT at once.
/// Meant to be called from another thread than the polling one.
///
/// Errors: KRMX_ERR_NULL_ARGUMENT, KRMX_ERR_INVALID_HANDLE.
///
/// # Safety
/// `client` as for `krmx_client_connect`.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_wake(client: *mut KrmxClient) -> KrmxResult {
    guard("krmx_client_wake", || {
        handle(client)?.client.waker().wake();
        Ok(KRMX_OK)
    })
}

/// Writes the client's status into `*status` (one of `KrmxClientStatus`).
///
/// # Safety
/// `client` as for `krmx_client_connect`; `status` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_status(client: *const KrmxClient, status: *mut KrmxClientStatus) -> KrmxResult {
    guard("krmx_client_status", || {
        let client = handle(client)?;
        let status = status.as_mut().ok_or_else(|| FfiError::null("status"))?;
        use KrmxClientStatus::*;
        *status = match client.client.status() {
            ClientStatus::Initializing => KRMX_CLIENT_STATUS_INITIALIZING,
            ClientStatus::Connecting => KRMX_CLIENT_STATUS_CONNECTING,
            ClientStatus::Connected => KRMX_CLIENT_STATUS_CONNECTED,
            ClientStatus::Linking => KRMX_CLIENT_STATUS_LINKING,
            ClientStatus::Linked => KRMX_CLIENT_STATUS_LINKED,
            ClientStatus::Unlinking => KRMX_CLIENT_STATUS_UNLINKING,
            ClientStatus::Closing => KRMX_CLIENT_STATUS_CLOSING,
            ClientStatus::Closed => KRMX_CLIENT_STATUS_CLOSED,
        };
        Ok(KRMX_OK)
    })
}

/// Copies the client's own username (while linking or linked) into `username` (`capacity` bytes,
/// NUL-terminated), its length into `*username_len` (may be NULL).
///
/// Errors: KRMX_ERR_WRONG_STATUS (not linking or linked), KRMX_ERR_BUFFER_TOO_SMALL (the needed
/// length is still written), KRMX_ERR_NULL_ARGUMENT (`username`).
///
/// # Safety
/// `username` is valid for `capacity` bytes; `username_len` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_username(
    client: *const KrmxClient,
    username: *mut c_char,
    capacity: usize,
    username_len: *mut usize,
) -> KrmxResult {
    guard("krmx_client_username", || {
        let client = handle(client)?;
        let name = client
            .client
            .username()
            .ok_or_else(|| FfiError::new(KRMX_ERR_WRONG_STATUS, "the client is not linking or linked"))?;
        copy_out(&name, username, "username", capacity, username_len)?;
        Ok(KRMX_OK)
    })
}

/// Writes the number of known users into `*count` (0 unless linked). Users are numbered 0..count
/// in join order, as of the events polled so far.
///
/// # Safety
/// `client` as for `krmx_client_connect`; `count` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_user_count(client: *const KrmxClient, count: *mut usize) -> KrmxResult {
    guard("krmx_client_user_count", || {
        let client = handle(client)?;
        *count.as_mut().ok_or_else(|| FfiError::null("count"))? = client.client.user_count();
        Ok(KRMX_OK)
    })
}

/// Copies user `index`'s name (NUL-terminated) into `username` (`capacity` bytes), its length into
/// `*username_len` (may be NULL) and whether it is linked into `*is_linked` (may be NULL).
///
/// Errors: KRMX_ERR_INVALID_ARGUMENT (index out of range), KRMX_ERR_BUFFER_TOO_SMALL (the needed
/// length is still written to `*username_len`), KRMX_ERR_NULL_ARGUMENT (`username`).
///
/// # Safety
/// `username` is valid for `capacity` bytes; the out pointers are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_user(
    client: *const KrmxClient,
    index: usize,
    username: *mut c_char,
    capacity: usize,
    username_len: *mut usize,
    is_linked: *mut bool,
) -> KrmxResult {
    guard("krmx_client_user", || {
        let user = handle(client)?.client.user(index);
        copy_user(user, index, username, capacity, username_len, is_linked)?;
        Ok(KRMX_OK)
    })
}

/// Closes the connection (the server unlinks this client's user), or stops reconnecting.
/// KRMX_EVENT_CLOSE follows; the client may connect again after it.
///
/// Errors: KRMX_ERR_WRONG_STATUS (never connected, closing, or closed).
///
/// # Safety
/// As for `krmx_client_connect`.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_disconnect(client: *mut KrmxClient) -> KrmxResult {
    guard("krmx_client_disconnect", || {
        handle(client)?.client.disconnect()?;
        Ok(KRMX_OK)
    })
}

/// Releases a client in any status, and waits until everything it opened is closed: a connect in
/// progress is abandoned, an open connection is closed (the server got the frames already queued,
/// then close code 1001 "going away"; it unlinks the user), a reconnect that was waiting never
/// starts. That takes milliseconds; a server that stopped reading gets up to 500 ms; never more
/// than 2 s in all. The host is not told (no events). Strings of the last event become invalid.
/// NULL is a no-op; a handle that was already freed (or is not a handle of this kind) gives
/// KRMX_ERR_INVALID_HANDLE.
///
/// # Safety
/// `client` is NULL or a handle from `krmx_client_new`; it must not be used again.
#[no_mangle]
pub unsafe extern "C" fn krmx_client_free(client: *mut KrmxClient) -> KrmxResult {
    guard("krmx_client_free", || {
        free(client, HandleKind::Client, |handle| handle.client.waker().wake())?;
        Ok(KRMX_OK)
    })
}
