//! The event struct a host polls into, and the storage that backs its borrowed strings.

use std::ffi::c_char;
use std::ptr;
use std::sync::Mutex;
use std::time::Duration;

use super::result::{FfiError, KrmxResult};
use crate::proto::{ClientEvent, Message, ServerEvent};

/// What happened. Numbers are stable and never reused.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum KrmxEventKind {
    /// No event (the poll timed out).
    KRMX_EVENT_NONE = 0,
    /// Server: listening; `port` is set.
    KRMX_EVENT_LISTEN = 1,
    /// Server: a link request awaits `krmx_server_authenticate`; `request_id`, `username`,
    /// `is_new_user` and `auth` (NULL when the client sent none) are set.
    KRMX_EVENT_AUTHENTICATE = 2,
    /// A user joined; `username` is set.
    KRMX_EVENT_JOIN = 3,
    /// A user linked to a connection; `username` is set.
    KRMX_EVENT_LINK = 4,
    /// A user unlinked from its connection; `username` is set.
    KRMX_EVENT_UNLINK = 5,
    /// A user left; `username` is set.
    KRMX_EVENT_LEAVE = 6,
    /// A custom message: `message_type`, and `payload` as JSON text (NULL when the message had none);
    /// on the server also `username`, its sender.
    KRMX_EVENT_MESSAGE = 7,
    /// Closed. Server: it stopped (every user left, every socket closed). Client: the connection
    /// is closed for good, `reason` says why (the host disconnected, the server went away, the
    /// first connect failed, or reconnecting gave up).
    KRMX_EVENT_CLOSE = 8,
    /// Client: the WebSocket is open (also after each successful reconnect); `krmx_client_link` may
    /// follow.
    KRMX_EVENT_CONNECT = 9,
    /// Client: the server accepted the link; the client is linked and the user table holds itself.
    KRMX_EVENT_ACCEPT = 10,
    /// Client: the server rejected the link; `reason` is the server's reason.
    KRMX_EVENT_REJECT = 11,
    /// Client (reconnect on): the connection was lost, or a re-link was refused because the server
    /// still holds the old link. Attempt `attempt` starts after `delay_ms`; `reason` says what
    /// happened. The user table is empty until the client is back.
    KRMX_EVENT_RECONNECTING = 12,
    /// Client (reconnect on): back after KRMX_EVENT_RECONNECTING: connected again and, when it was
    /// linked, re-linked with the same username and auth (JOIN and LINK events rebuild the table).
    KRMX_EVENT_RECONNECT = 13,
}

/// One event, filled in by a poll. The caller owns the struct (usually on its stack); the strings
/// it points to are owned by the handle and stay valid until the next poll or free of that handle.
/// Every string is NUL-terminated UTF-8 and its length (without the NUL) is given too. Fields that
/// do not apply to `kind` are NULL or 0.
#[repr(C)]
#[derive(Debug)]
pub struct KrmxEvent {
    pub kind: KrmxEventKind,
    /// Server LISTEN: the port listened on.
    pub port: u16,
    /// Server AUTHENTICATE: whether the user would be new.
    pub is_new_user: bool,
    /// Server AUTHENTICATE: the id to answer with `krmx_server_authenticate`.
    pub request_id: u64,
    pub username: *const c_char,
    pub username_len: usize,
    /// Server AUTHENTICATE: the client's auth string; NULL when it sent none.
    pub auth: *const c_char,
    pub auth_len: usize,
    /// MESSAGE: the message type (its `type` field).
    pub message_type: *const c_char,
    pub message_type_len: usize,
    /// MESSAGE: the payload as compact JSON text; NULL when the message had no payload.
    pub payload: *const c_char,
    pub payload_len: usize,
    /// Client REJECT, CLOSE and RECONNECTING: why, for humans (REJECT: the server's exact reason).
    pub reason: *const c_char,
    pub reason_len: usize,
    /// Client RECONNECTING: the attempt about to be made, counting from 1.
    pub attempt: u32,
    /// Client RECONNECTING: milliseconds until that attempt.
    pub delay_ms: u32,
}

impl KrmxEvent {
    pub fn none() -> Self {
        KrmxEvent {
            kind: KrmxEventKind::KRMX_EVENT_NONE,
            port: 0,
            is_new_user: false,
            request_id: 0,
            username: ptr::null(),
            username_len: 0,
            auth: ptr::null(),
            auth_len: 0,
            message_type: ptr::null(),
            message_type_len: 0,
            payload: ptr::null(),
            payload_len: 0,
            reason: ptr::null(),
            reason_len: 0,
            attempt: 0,
            delay_ms: 0,
        }
    }
}

/// NUL-terminated copies of the current event's strings, owned by a handle.
#[derive(Default)]
pub struct EventStrings {
    username: Vec<u8>,
    auth: Vec<u8>,
    kind: Vec<u8>,
    payload: Vec<u8>,
    reason: Vec<u8>,
}

fn store(buffer: &mut Vec<u8>, text: &str) -> (*const c_char, usize) {
    buffer.clear();
    buffer.extend_from_slice(text.as_bytes());
    buffer.push(0);
    (buffer.as_ptr().cast(), text.len())
}

impl EventStrings {
    /// Fills `event` from a server event; the strings live in `self`.
    pub fn server_event(&mut self, source: &ServerEvent) -> KrmxEvent {
        use KrmxEventKind::*;
        let mut event = KrmxEvent::none();
        let mut username = |name: &str, event: &mut KrmxEvent| {
            (event.username, event.username_len) = store(&mut self.username, name);
        };
        match source {
            ServerEvent::Listen { port } => {
                event.kind = KRMX_EVENT_LISTEN;
                event.port = *port;
            }
            ServerEvent::Authenticate { request_id, username: name, is_new_user, auth } => {
                event.kind = KRMX_EVENT_AUTHENTICATE;
                event.request_id = *request_id;
                event.is_new_user = *is_new_user;
                username(name, &mut event);
                if let Some(auth) = auth {
                    (event.auth, event.auth_len) = store(&mut self.auth, auth);
                }
            }
            ServerEvent::Join { username: name } => {
                event.kind = KRMX_EVENT_JOIN;
                username(name, &mut event);
            }
            ServerEvent::Link { username: name } => {
                event.kind = KRMX_EVENT_LINK;
                username(name, &mut event);
            }
            ServerEvent::Unlink { username: name } => {
                event.kind = KRMX_EVENT_UNLINK;
                username(name, &mut event);
            }
            ServerEvent::Leave { username: name } => {
                event.kind = KRMX_EVENT_LEAVE;
                username(name, &mut event);
            }
            ServerEvent::Message { username: name, message } => {
                event.kind = KRMX_EVENT_MESSAGE;
                username(name, &mut event);
                self.message(message, &mut event);
            }
            ServerEvent::Close => event.kind = KRMX_EVENT_CLOSE,
        }
        event
    }

    /// Fills `event` from a client event; the strings live in `self`.
    pub fn client_event(&mut self, source: &ClientEvent) -> KrmxEvent {
        use KrmxEventKind::*;
        let mut event = KrmxEvent::none();
        let mut username = |name: &str, event: &mut KrmxEvent| {
            (event.username, event.username_len) = store(&mut self.username, name);
        };
        match source {
            ClientEvent::Connect => event.kind = KRMX_EVENT_CONNECT,
            ClientEvent::Accept => event.kind = KRMX_EVENT_ACCEPT,
            ClientEvent::Reject { reason } => {
                event.kind = KRMX_EVENT_REJECT;
                (event.reason, event.reason_len) = store(&mut self.reason, reason);
            }
            ClientEvent::Join { username: name } => {
                event.kind = KRMX_EVENT_JOIN;
                username(name, &mut event);
            }
            ClientEvent::Link { username: name } => {
                event.kind = KRMX_EVENT_LINK;
                username(name, &mut event);
            }
            ClientEvent::Unlink { username: name } => {
                event.kind = KRMX_EVENT_UNLINK;
                username(name, &mut event);
            }
            ClientEvent::Leave { username: name } => {
                event.kind = KRMX_EVENT_LEAVE;
                username(name, &mut event);
            }
            ClientEvent::Message { message } => {
                event.kind = KRMX_EVENT_MESSAGE;
                self.message(message, &mut event);
            }
            ClientEvent::Reconnecting { attempt, delay, why } => {
                event.kind = KRMX_EVENT_RECONNECTING;
                event.attempt = *attempt;
                event.delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
                (event.reason, event.reason_len) = store(&mut self.reason, why);
            }
            ClientEvent::Reconnect => event.kind = KRMX_EVENT_RECONNECT,
            ClientEvent::Close { why } => {
                event.kind = KRMX_EVENT_CLOSE;
                (event.reason, event.reason_len) = store(&mut self.reason, why);
            }
        }
        event
    }

    fn message(&mut self, message: &Message, event: &mut KrmxEvent) {
        (event.message_type, event.message_type_len) = store(&mut self.kind, &message.kind);
        if let Some(payload) = &message.payload {
            // Serialized straight into the buffer the last event's payload used.
            self.payload.clear();
            serde_json::to_writer(&mut self.payload, payload).expect("a JSON value always serializes");
            event.payload_len = self.payload.len();
            self.payload.push(0);
            event.payload = self.payload.as_ptr().cast();
        }
    }
}

/// What `krmx_server_poll` and `krmx_client_poll` share: clears `*event`, polls with the C
/// timeout convention (negative: wait as long as it takes), and fills `*event` from what came,
/// its strings stored in `strings`.
///
/// # Safety
/// `event` is NULL or valid for writing.
pub unsafe fn poll_into<E>(
    event: *mut KrmxEvent,
    timeout_ms: i32,
    strings: &Mutex<EventStrings>,
    poll: impl FnOnce(Option<Duration>) -> Option<E>,
    fill: impl FnOnce(&mut EventStrings, &E) -> KrmxEvent,
) -> Result<KrmxResult, FfiError> {
    let event = event.as_mut().ok_or_else(|| FfiError::null("event"))?;
    *event = KrmxEvent::none();
    let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
    match poll(timeout) {
        Some(source) => {
            *event = fill(&mut strings.lock().unwrap_or_else(|e| e.into_inner()), &source);
            Ok(KrmxResult::KRMX_OK)
        }
        None => Ok(KrmxResult::KRMX_NO_EVENT),
    }
}
