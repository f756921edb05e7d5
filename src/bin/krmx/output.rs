//! Events as JSON lines on stdout, one object per line, flushed at once (`krmx serve` and
//! `krmx connect`).

use std::io::Write;

use krmx::{ClientEvent, ServerEvent, User};
use serde_json::{json, Value};

pub fn print(line: Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) is not a reason to stop serving.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn error(message: impl std::fmt::Display) {
    print(json!({ "event": "error", "error": message.to_string() }));
}

pub fn users(users: &[User]) -> Value {
    let users: Vec<Value> =
        users.iter().map(|u| json!({ "username": u.username, "isLinked": u.is_linked })).collect();
    json!({ "event": "users", "users": users })
}

pub fn server_event(event: &ServerEvent) -> Value {
    match event {
        ServerEvent::Listen { port } => json!({ "event": "listen", "port": port }),
        ServerEvent::Authenticate { request_id, username, is_new_user, auth } => json!({
            "event": "authenticate", "id": request_id, "username": username,
            "isNewUser": is_new_user, "auth": auth,
        }),
        ServerEvent::Join { username } => json!({ "event": "join", "username": username }),
        ServerEvent::Link { username } => json!({ "event": "link", "username": username }),
        ServerEvent::Unlink { username } => json!({ "event": "unlink", "username": username }),
        ServerEvent::Leave { username } => json!({ "event": "leave", "username": username }),
        ServerEvent::Message { username, message } => {
            json!({ "event": "message", "username": username, "message": message.to_value() })
        }
        ServerEvent::Close => json!({ "event": "close" }),
    }
}

/// `username`: the client's own, named by the accept line.
pub fn client_event(event: &ClientEvent, username: Option<&str>) -> Value {
    match event {
        ClientEvent::Connect => json!({ "event": "connect" }),
        ClientEvent::Accept => json!({ "event": "accept", "username": username }),
        ClientEvent::Reject { reason } => json!({ "event": "reject", "reason": reason }),
        ClientEvent::Join { username } => json!({ "event": "join", "username": username }),
        ClientEvent::Link { username } => json!({ "event": "link", "username": username }),
        ClientEvent::Unlink { username } => json!({ "event": "unlink", "username": username }),
        ClientEvent::Leave { username } => json!({ "event": "leave", "username": username }),
        ClientEvent::Message { message } => json!({ "event": "message", "message": message.to_value() }),
        ClientEvent::Reconnecting { attempt, delay, why } => json!({
            "event": "reconnecting", "attempt": attempt,
            "delayMs": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "reason": why,
        }),
        ClientEvent::Reconnect => json!({ "event": "reconnect" }),
        ClientEvent::Close { why } => json!({ "event": "close", "reason": why }),
    }
}
