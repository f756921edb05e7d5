//! The `krmx connect` command as a child process, against `krmx serve` as another: JSON-line
//! events on their stdouts, JSON-line commands on their stdins, a real WebSocket between them on
//! 127.0.0.1. Every read is bounded by a timeout (a hang guard only: no test measures time), and
//! every child is killed when its test ends (pass or fail).

mod common;

use std::process::{Command, Stdio};

use common::cli::{ev, Krmx};
use common::closed_port;
use serde_json::{json, Value};

/// Quick reconnects, so that the reconnect tests do not wait long.
const FAST_RECONNECT: [&str; 4] = ["--reconnect-min-ms", "20", "--reconnect-max-ms", "100"];
const DISCONNECTED: &str = "disconnected by the client";

/// `krmx serve --port PORT` (0: any free port), with its listen line read. Returns it and its port.
fn serve_on(port: u16, args: &[&str]) -> (Krmx, u16) {
    Krmx::serve_on(port, args, true)
}

fn serve(args: &[&str]) -> (Krmx, u16) {
    serve_on(0, args)
}

fn url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}")
}

/// `krmx connect ws://127.0.0.1:PORT ARGS...`.
fn connect(port: u16, args: &[&str]) -> Krmx {
    connect_with(port, args, true)
}

fn connect_with(port: u16, args: &[&str], with_stdin: bool) -> Krmx {
    let url = url(port);
    let mut all = vec!["connect", url.as_str()];
    all.extend_from_slice(args);
    Krmx::spawn(&all, with_stdin)
}

/// A client linked at once with `--username`, its lines and the server's consumed.
fn linked(serve: &Krmx, port: u16, username: &str, args: &[&str]) -> Krmx {
    let mut all = vec!["--username", username];
    all.extend_from_slice(args);
    let client = connect(port, &all);
    client.expect_all(&[
        json!({ "event": "connect" }),
        json!({ "event": "accept", "username": username }),
    ]);
    serve.expect_all(&[ev("join", username), ev("link", username)]);
    client
}

fn users(list: &[(&str, bool)]) -> Value {
    let list: Vec<Value> = list.iter().map(|(name, linked)| json!({ "username": name, "isLinked": linked })).collect();
    json!({ "event": "users", "users": list })
}

/// A port that nothing listens on (bound, then released).

// ----- linking --------------------------------------------------------------------------------

#[test]
fn connect_then_link_on_stdin_users_and_disconnect_exits_0() {
    let (s, port) = serve(&[]);
    let mut c = connect(port, &[]);
    assert_eq!(c.next_text(), r#"{"event":"connect"}"#);
    c.send(json!({ "cmd": "users" }));
    assert_eq!(c.next_text(), r#"{"event":"users","users":[]}"#);

    c.send(json!({ "cmd": "link", "username": "simon" }));
    assert_eq!(c.next_text(), r#"{"event":"accept","username":"simon"}"#);
    assert_eq!(c.next_text(), r#"{"event":"join","username":"simon"}"#);
    assert_eq!(c.next_text(), r#"{"event":"link","username":"simon"}"#);
    s.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
    c.send(json!({ "cmd": "users" }));
    assert_eq!(c.next_text(), r#"{"event":"users","users":[{"username":"simon","isLinked":true}]}"#);

    c.send(json!({ "cmd": "disconnect" }));
    assert_eq!(c.next_text(), r#"{"event":"close","reason":"disconnected by the client"}"#);
    assert_eq!(c.wait_exit().code(), Some(0));
    // The socket closed, which unlinks the user on the server.
    s.expect(ev("unlink", "simon"));
}

#[test]
fn username_option_links_at_once_with_the_auth_option() {
    let (mut s, port) = serve(&["--auth"]);
    let c = connect(port, &["--username", "simon", "--auth", "secret"]);
    assert_eq!(c.next_text(), r#"{"event":"connect"}"#);
    let request = s.next_line();
    assert_eq!(request["event"], "authenticate", "{request}");
    assert_eq!(
        request,
        json!({ "event": "authenticate", "id": request["id"], "username": "simon", "isNewUser": true, "auth": "secret" })
    );
    s.send(json!({ "cmd": "accept", "id": request["id"] }));
    assert_eq!(c.next_text(), r#"{"event":"accept","username":"simon"}"#);
    assert_eq!(c.next_text(), r#"{"event":"join","username":"simon"}"#);
    assert_eq!(c.next_text(), r#"{"event":"link","username":"simon"}"#);
    s.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
}

#[test]
fn other_users_show_up_as_join_link_unlink_and_leave_lines() {
    let (mut s, port) = serve(&[]);
    let mut simon = linked(&s, port, "simon", &[]);
    simon.expect_all(&[ev("join", "simon"), ev("link", "simon")]);

    let mut lisa = linked(&s, port, "lisa", &[]);
    lisa.expect_all(&[ev("join", "simon"), ev("link", "simon"), ev("join", "lisa"), ev("link", "lisa")]);
    simon.expect_all(&[ev("join", "lisa"), ev("link", "lisa")]);
    simon.send(json!({ "cmd": "users" }));
    simon.expect(users(&[("simon", true), ("lisa", true)]));

    lisa.send(json!({ "cmd": "unlink" }));
    lisa.expect(ev("unlink", "lisa"));
    simon.expect(ev("unlink", "lisa"));
    s.expect(ev("unlink", "lisa"));
    simon.send(json!({ "cmd": "users" }));
    simon.expect(users(&[("simon", true), ("lisa", false)]));

    s.send(json!({ "cmd": "kick", "username": "lisa" }));
    simon.expect(ev("leave", "lisa"));
    s.expect(ev("leave", "lisa"));
    simon.send(json!({ "cmd": "users" }));
    simon.expect(users(&[("simon", true)]));
    // Lisa's client, no longer linked, heard nothing of that, and is still connected.
    lisa.send(json!({ "cmd": "users" }));
    lisa.expect(users(&[]));
}

// ----- messages -------------------------------------------------------------------------------

#[test]
fn send_reaches_the_server_and_broadcasts_arrive_as_message_lines() {
    let (mut s, port) = serve(&[]);
    let mut c = linked(&s, port, "simon", &[]);
    c.expect_all(&[ev("join", "simon"), ev("link", "simon")]);

    c.send(json!({ "cmd": "send", "message": { "type": "chat", "payload": { "text": "hi", "list": [1, 2] } } }));
    assert_eq!(
        s.next_text(),
        r#"{"event":"message","username":"simon","message":{"type":"chat","payload":{"text":"hi","list":[1,2]}}}"#
    );
    c.send(json!({ "cmd": "send", "message": { "type": "bare" } }));
    s.expect(json!({ "event": "message", "username": "simon", "message": { "type": "bare" } }));

    s.send(json!({ "cmd": "broadcast", "message": { "type": "news", "payload": { "z": 1, "a": [true, null] } } }));
    assert_eq!(c.next_text(), r#"{"event":"message","message":{"type":"news","payload":{"z":1,"a":[true,null]}}}"#);
    s.send(json!({ "cmd": "send", "username": "simon", "message": { "type": "dm" } }));
    assert_eq!(c.next_text(), r#"{"event":"message","message":{"type":"dm"}}"#);
}

#[test]
fn refused_actions_and_bad_commands_print_error_lines_and_the_client_goes_on() {
    let (s, port) = serve(&[]);
    let mut c = connect(port, &[]);
    c.expect(json!({ "event": "connect" }));

    c.send(json!({ "cmd": "send", "message": { "type": "chat" } }));
    assert_eq!(c.expect_error(), "cannot send when the client is connected");
    c.send(json!({ "cmd": "unlink" }));
    assert_eq!(c.expect_error(), "cannot unlink when the client is connected");
    c.send(json!({ "cmd": "leave" }));
    assert_eq!(c.expect_error(), "cannot leave when the client is connected");
    c.command("hello");
    assert!(c.expect_error().starts_with("command is not JSON"));
    c.send(json!({ "command": "users" }));
    assert_eq!(c.expect_error(), r#"command has no string "cmd""#);
    c.send(json!({ "cmd": "fly" }));
    assert_eq!(c.expect_error(), r#"unknown command "fly""#);
    c.send(json!({ "cmd": "link" }));
    assert_eq!(c.expect_error(), r#"link: "username" must be a string"#);
    c.send(json!({ "cmd": "link", "username": "simon", "auth": 7 }));
    assert_eq!(c.expect_error(), r#"link: "auth" must be a string"#);
    c.send(json!({ "cmd": "send" }));
    assert_eq!(c.expect_error(), r#"send: "message" is missing"#);
    c.send(json!({ "cmd": "send", "message": { "payload": 1 } }));
    assert_eq!(c.expect_error(), r#"send: "message" must be an object with a string "type""#);
    c.command("   ");
    assert!(c.is_running());

    // Still working: it links, and refuses what a linked client may not do.
    c.send(json!({ "cmd": "link", "username": "simon", "auth": null }));
    c.expect_all(&[json!({ "event": "accept", "username": "simon" }), ev("join", "simon"), ev("link", "simon")]);
    s.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
    c.send(json!({ "cmd": "link", "username": "lisa" }));
    assert_eq!(c.expect_error(), "cannot link when the client is linked");
    c.send(json!({ "cmd": "send", "message": { "type": "krmx/leave" } }));
    assert!(c.expect_error().contains("'krmx/'"));
    c.send(json!({ "cmd": "users" }));
    c.expect(users(&[("simon", true)]));
}

// ----- rejections -----------------------------------------------------------------------------

#[test]
fn an_invalid_username_is_rejected_and_the_client_may_link_again() {
    let (s, port) = serve(&[]);
    let mut c = connect(port, &["--username", "1nvalid"]);
    assert_eq!(c.next_text(), r#"{"event":"connect"}"#);
    assert_eq!(c.next_text(), r#"{"event":"reject","reason":"invalid username"}"#);
    c.send(json!({ "cmd": "link", "username": "simon" }));
    c.expect_all(&[json!({ "event": "accept", "username": "simon" }), ev("join", "simon"), ev("link", "simon")]);
    s.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
}

#[test]
fn an_old_protocol_version_is_rejected_with_the_servers_reason() {
    let (_s, port) = serve(&[]);
    let mut c = connect(port, &["--username", "simon", "--protocol-version", "0.4.0"]);
    c.expect(json!({ "event": "connect" }));
    c.expect(json!({ "event": "reject", "reason": "krmx server version mismatch (server=0.5.*,client=0.4.0)" }));
    assert!(c.is_running());
    c.send(json!({ "cmd": "disconnect" }));
    assert_eq!(c.expect_close(), DISCONNECTED);
    assert_eq!(c.wait_exit().code(), Some(0));
}

// ----- lifecycle ------------------------------------------------------------------------------

#[test]
fn unlink_link_leave_then_disconnect_exits_0() {
    let (s, port) = serve(&[]);
    let mut c = linked(&s, port, "simon", &[]);
    c.expect_all(&[ev("join", "simon"), ev("link", "simon")]);

    c.send(json!({ "cmd": "unlink" }));
    c.expect(ev("unlink", "simon"));
    s.expect(ev("unlink", "simon"));
    c.send(json!({ "cmd": "users" }));
    c.expect(users(&[]));

    c.send(json!({ "cmd": "link", "username": "simon" }));
    c.expect_all(&[json!({ "event": "accept", "username": "simon" }), ev("join", "simon"), ev("link", "simon")]);
    s.expect(ev("link", "simon"));

    c.send(json!({ "cmd": "leave" }));
    c.expect_all(&[ev("unlink", "simon"), ev("leave", "simon")]);
    s.expect_all(&[ev("unlink", "simon"), ev("leave", "simon")]);

    c.send(json!({ "cmd": "disconnect" }));
    assert_eq!(c.expect_close(), DISCONNECTED);
    assert_eq!(c.wait_exit().code(), Some(0));
}

#[test]
fn the_server_closing_closes_the_client_with_exit_1() {
    let (mut s, port) = serve(&[]);
    let mut c = linked(&s, port, "simon", &[]);
    c.expect_all(&[ev("join", "simon"), ev("link", "simon")]);

    s.send(json!({ "cmd": "close" }));
    c.expect_all(&[ev("unlink", "simon"), ev("leave", "simon")]);
    let reason = c.expect_close();
    assert_ne!(reason, DISCONNECTED);
    assert_eq!(c.wait_exit().code(), Some(1));
    s.expect_all(&[ev("unlink", "simon"), ev("leave", "simon"), json!({ "event": "close" })]);
    assert_eq!(s.wait_exit().code(), Some(0));
}

/// Reads reconnecting lines (attempt `first`, then one more each) up to the first line that is not
/// one, and returns that line.
fn skip_reconnecting(c: &Krmx, first: u64) -> Value {
    let mut attempt = first;
    loop {
        let line = c.next_line();
        if line["event"] != "reconnecting" {
            return line;
        }
        let object = line.as_object().unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["event", "attempt", "delayMs", "reason"], "{line}");
        assert_eq!(line["attempt"], attempt, "{line}");
        assert!(line["delayMs"].is_u64(), "{line}");
        assert!(line["reason"].is_string(), "{line}");
        attempt += 1;
    }
}

fn reconnecting_client(s: &Krmx, port: u16, extra: &[&str]) -> Krmx {
    let mut args = vec!["--reconnect"];
    args.extend_from_slice(&FAST_RECONNECT);
    args.extend_from_slice(extra);
    let c = linked(s, port, "simon", &args);
    c.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
    c
}

/// After the server came back on `port`: the client reconnects and re-links.
fn expect_reconnected(c: &mut Krmx, s: &Krmx) {
    let line = skip_reconnecting(c, 2);
    assert_eq!(line, json!({ "event": "connect" }));
    c.expect_all(&[
        json!({ "event": "accept", "username": "simon" }),
        json!({ "event": "reconnect" }),
        ev("join", "simon"),
        ev("link", "simon"),
    ]);
    s.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
    c.send(json!({ "cmd": "send", "message": { "type": "back" } }));
    s.expect(json!({ "event": "message", "username": "simon", "message": { "type": "back" } }));
}

fn expect_first_reconnecting(c: &Krmx) {
    let line = c.next_line();
    assert_eq!(line["event"], "reconnecting", "{line}");
    assert_eq!(line["attempt"], 1, "{line}");
}

#[test]
fn with_reconnect_a_killed_and_restarted_server_is_rejoined() {
    let (s, port) = serve(&[]);
    let mut c = reconnecting_client(&s, port, &[]);

    // Killed: no unlink or leave reaches the client, just a dropped connection.
    drop(s);
    expect_first_reconnecting(&c);
    // Restarted on the same port while the client keeps trying.
    let (s, _) = serve_on(port, &[]);
    expect_reconnected(&mut c, &s);

    c.send(json!({ "cmd": "disconnect" }));
    assert_eq!(c.expect_close(), DISCONNECTED);
    assert_eq!(c.wait_exit().code(), Some(0));
}

#[test]
fn with_reconnect_a_closed_and_restarted_server_is_rejoined_too() {
    let (mut s, port) = serve(&[]);
    let mut c = reconnecting_client(&s, port, &[]);

    // Closed gracefully: the server unlinks and removes the user first.
    s.send(json!({ "cmd": "close" }));
    c.expect_all(&[ev("unlink", "simon"), ev("leave", "simon")]);
    expect_first_reconnecting(&c);
    s.expect_all(&[ev("unlink", "simon"), ev("leave", "simon"), json!({ "event": "close" })]);
    assert_eq!(s.wait_exit().code(), Some(0));
    let (s, _) = serve_on(port, &[]);
    expect_reconnected(&mut c, &s);
}

#[test]
fn reconnecting_gives_up_after_the_attempts_allowed_and_exits_1() {
    let (s, port) = serve(&[]);
    let mut c = reconnecting_client(&s, port, &["--reconnect-attempts", "2"]);
    drop(s);
    expect_first_reconnecting(&c);
    let line = skip_reconnecting(&c, 2);
    assert_eq!(line["event"], "close", "{line}");
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.starts_with("gave up reconnecting after 2 attempts: "), "{reason}");
    assert_eq!(c.wait_exit().code(), Some(1));
}

#[test]
fn disconnect_while_waiting_to_reconnect_exits_0() {
    let (s, port) = serve(&[]);
    let mut c = reconnecting_client(&s, port, &["--reconnect-min-ms", "60000", "--reconnect-max-ms", "60000"]);
    drop(s);
    expect_first_reconnecting(&c);
    c.send(json!({ "cmd": "disconnect" }));
    assert_eq!(c.expect_close(), DISCONNECTED);
    assert_eq!(c.wait_exit().code(), Some(0));
}

#[test]
fn a_closed_port_closes_with_cannot_connect_and_exits_1() {
    let (_reserved, port) = closed_port();
    // With or without --reconnect: a first connect that fails is not retried.
    for args in [&[][..], &["--reconnect", "--username", "simon"]] {
        let mut c = connect(port, args);
        let reason = c.expect_close();
        assert!(reason.starts_with(&format!("cannot connect to {}", url(port))), "{reason}");
        assert_eq!(c.wait_exit().code(), Some(1), "{args:?}");
    }
}

#[test]
fn bad_urls_and_options_exit_2_with_usage() {
    let (_reserved, port) = closed_port();
    let port = port.to_string();
    let good = format!("ws://127.0.0.1:{port}");
    let cases: Vec<Vec<&str>> = vec![
        vec!["connect"],
        vec!["connect", "http://127.0.0.1:1/"],
        vec!["connect", "not a url"],
        vec!["connect", "wss://127.0.0.1:1/"],
        vec!["connect", &good, "--bogus"],
        vec!["connect", &good, "--username"],
        vec!["connect", &good, "--liveness-ms", "x"],
        vec!["connect", &good, "--reconnect-attempts", "-1"],
        vec!["connect", &good, &good],
    ];
    for args in &cases {
        let output = Command::new(env!("CARGO_BIN_EXE_krmx")).args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("usage: krmx serve"), "{args:?}: {stderr}");
        assert!(stderr.contains("krmx connect URL"), "{args:?}: {stderr}");
    }
}

#[test]
fn sigterm_disconnects_and_exits_0() {
    let (s, port) = serve(&[]);
    let mut c = linked(&s, port, "simon", &[]);
    c.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
    c.signal(libc::SIGTERM);
    assert_eq!(c.next_text(), r#"{"event":"close","reason":"disconnected by the client"}"#);
    assert_eq!(c.wait_exit().code(), Some(0));
    s.expect(ev("unlink", "simon"));
}

#[test]
fn closed_stdin_does_not_stop_the_client_and_sigint_disconnects() {
    let (mut s, port) = serve(&[]);
    let mut c = connect_with(port, &["--username", "simon", "--liveness-ms", "0"], false);
    c.expect_all(&[
        json!({ "event": "connect" }),
        json!({ "event": "accept", "username": "simon" }),
        ev("join", "simon"),
        ev("link", "simon"),
    ]);
    s.expect_all(&[ev("join", "simon"), ev("link", "simon")]);
    s.send(json!({ "cmd": "broadcast", "message": { "type": "still-there", "payload": 1 } }));
    c.expect(json!({ "event": "message", "message": { "type": "still-there", "payload": 1 } }));
    assert!(c.is_running());

    c.signal(libc::SIGINT);
    assert_eq!(c.expect_close(), DISCONNECTED);
    assert_eq!(c.wait_exit().code(), Some(0));
}
