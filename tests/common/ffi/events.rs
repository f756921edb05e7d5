//! Polled `KrmxEvent`s rendered as short lines ("join alice", "reject invalid username", ...), so
//! that a test compares whole sequences of events at once and a mismatch shows them all.

use krmx::ffi::event::{KrmxEvent, KrmxEventKind::*};

use super::text;

/// A polled client event: its line, and the fields a line does not show.
#[derive(Debug)]
pub struct Ev {
    pub line: String,
    pub reason: Option<String>,
    pub attempt: u32,
    pub delay_ms: u32,
}

/// A client event as `connect`, `join alice`, `message TYPE PAYLOAD|(none)`, `reject REASON`,
/// `close REASON`, `reconnecting ATTEMPT`, ...; checks the fields the line leaves out (no
/// username on a message, attempt and delay only on reconnecting).
pub fn render_client(event: &KrmxEvent) -> Ev {
    let user = text(event.username, event.username_len);
    let reason = text(event.reason, event.reason_len);
    let named = |what: &str| format!("{what} {}", user.clone().expect("this event names a user"));
    let why = |what: &str| format!("{what} {}", reason.clone().expect("this event has a reason"));
    let line = match event.kind {
        KRMX_EVENT_CONNECT => "connect".to_string(),
        KRMX_EVENT_ACCEPT => "accept".to_string(),
        KRMX_EVENT_REJECT => why("reject"),
        KRMX_EVENT_JOIN => named("join"),
        KRMX_EVENT_LINK => named("link"),
        KRMX_EVENT_UNLINK => named("unlink"),
        KRMX_EVENT_LEAVE => named("leave"),
        KRMX_EVENT_MESSAGE => {
            assert!(user.is_none(), "a client's message event has no username");
            format!(
                "message {} {}",
                text(event.message_type, event.message_type_len).expect("a message has a type"),
                text(event.payload, event.payload_len).unwrap_or_else(|| "(none)".into())
            )
        }
        KRMX_EVENT_CLOSE => why("close"),
        KRMX_EVENT_RECONNECTING => {
            assert!(reason.as_deref().is_some_and(|r| !r.is_empty()), "reconnecting without a reason");
            assert!(event.attempt >= 1);
            format!("reconnecting {}", event.attempt)
        }
        KRMX_EVENT_RECONNECT => "reconnect".to_string(),
        other => panic!("a client never polls {other:?}"),
    };
    if event.kind != KRMX_EVENT_RECONNECTING {
        assert_eq!((event.attempt, event.delay_ms), (0, 0), "{line}: attempt and delay only on reconnecting");
    }
    Ev { line, reason, attempt: event.attempt, delay_ms: event.delay_ms }
}

/// A server event as `listen PORT`, `authenticate USER new=BOOL auth=AUTH|(none)`, `join alice`,
/// `message USER TYPE PAYLOAD|(none)`, `close`, ...
pub fn render_server(event: &KrmxEvent) -> String {
    let user = text(event.username, event.username_len).unwrap_or_default();
    match event.kind {
        KRMX_EVENT_LISTEN => format!("listen {}", event.port),
        KRMX_EVENT_AUTHENTICATE => format!(
            "authenticate {user} new={} auth={}",
            event.is_new_user,
            text(event.auth, event.auth_len).unwrap_or_else(|| "(none)".into())
        ),
        KRMX_EVENT_JOIN => format!("join {user}"),
        KRMX_EVENT_LINK => format!("link {user}"),
        KRMX_EVENT_UNLINK => format!("unlink {user}"),
        KRMX_EVENT_LEAVE => format!("leave {user}"),
        KRMX_EVENT_MESSAGE => format!(
            "message {user} {} {}",
            text(event.message_type, event.message_type_len).unwrap(),
            text(event.payload, event.payload_len).unwrap_or_else(|| "(none)".into())
        ),
        KRMX_EVENT_CLOSE => "close".into(),
        other => panic!("a server never polls {other:?}"),
    }
}
