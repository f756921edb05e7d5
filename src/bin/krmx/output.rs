//! Events as JSON lines on stdout, one object per line, flushed at once.

use std::io::Write;

use krmx::{ServerEvent, User};
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
