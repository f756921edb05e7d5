//! The `krmx serve` command as a child process: JSON-line events on its stdout, JSON-line commands
//! on its stdin, and real WebSocket clients on 127.0.0.1. Every read is bounded by a timeout, and
//! every child is killed when its test ends (pass or fail).

mod common;

use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::{ev, Krmx};
use common::*;
use serde_json::{json, Value};

/// A running `krmx serve --port 0 ...` (killed on drop) and the port it listens on. It is a
/// [`Krmx`] child for everything else (its lines, commands, signals and exit).
struct Serve {
    krmx: Krmx,
    port: u16,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        Serve::start_with(args, true)
    }

    /// `with_stdin`: a pipe the test writes commands to; otherwise stdin is /dev/null (closed).
    fn start_with(args: &[&str], with_stdin: bool) -> Serve {
        let (krmx, port) = Krmx::serve_on(0, args, with_stdin);
        Serve { krmx, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    fn connect(&self, label: &str) -> Client {
        connect(&self.url()).labelled(label)
    }

    /// A client linked as a new user, with its join and link lines consumed.
    fn linked(&self, username: &str) -> Client {
        let mut client = self.connect(username);
        client.link(username);
        self.expect(json!({ "event": "join", "username": username }));
        self.expect(json!({ "event": "link", "username": username }));
        client
    }
}

impl Deref for Serve {
    type Target = Krmx;

    fn deref(&self) -> &Krmx {
        &self.krmx
    }
}

impl DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut Krmx {
        &mut self.krmx
    }
}

// ----- events ---------------------------------------------------------------------------------

#[test]
fn events_for_join_link_message_unlink_leave_users_and_close() {
    let mut s = Serve::start(&[]);
    let mut simon = s.connect("simon");
    simon.link("simon");
    // Exact text of the lines (compact, keys in this order).
    assert_eq!(s.next_text(), r#"{"event":"join","username":"simon"}"#);
    assert_eq!(s.next_text(), r#"{"event":"link","username":"simon"}"#);

    simon.send_text(r#"{"type":"chat","payload":{"text":"hi","list":[1,2]}}"#);
    assert_eq!(s.next_text(), r#"{"event":"message","username":"simon","message":{"type":"chat","payload":{"text":"hi","list":[1,2]}}}"#);
    simon.send_text(r#"{"type":"bare"}"#);
    s.expect(json!({ "event": "message", "username": "simon", "message": { "type": "bare" } }));

    let mut lisa = s.linked("lisa");
    s.send(json!({ "cmd": "users" }));
    assert_eq!(s.next_text(), r#"{"event":"users","users":[{"username":"simon","isLinked":true},{"username":"lisa","isLinked":true}]}"#);

    lisa.send_text(r#"{"type":"krmx/unlink"}"#);
    s.expect(ev("unlink", "lisa"));
    lisa.expect_frames(&[unlinked("lisa")]);
    s.send(json!({ "cmd": "users" }));
    s.expect(json!({ "event": "users", "users": [
        { "username": "simon", "isLinked": true }, { "username": "lisa", "isLinked": false },
    ] }));

    simon.send_text(r#"{"type":"krmx/leave"}"#);
    s.expect(ev("unlink", "simon"));
    s.expect(ev("leave", "simon"));

    s.send(json!({ "cmd": "close" }));
    s.expect(ev("leave", "lisa"));
    s.expect(json!({ "event": "close" }));
    assert!(s.wait_exit().success());
    // Every socket was closed.
    let (_, close) = lisa.recv_until_closed();
    assert!(close.is_some());
}

// ----- commands -------------------------------------------------------------------------------

#[test]
fn commands_send_broadcast_join_kick_and_unlink() {
    let mut s = Serve::start(&[]);
    let mut simon = s.linked("simon");
    let mut lisa = s.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);

    s.send(json!({ "cmd": "send", "username": "lisa", "message": { "type": "dm", "payload": { "b": 2, "a": 1 } } }));
    lisa.expect_frame(r#"{"type":"dm","payload":{"b":2,"a":1}}"#);

    s.send(json!({ "cmd": "broadcast", "message": { "type": "all" } }));
    simon.expect_frame(r#"{"type":"all"}"#);
    lisa.expect_frame(r#"{"type":"all"}"#);

    s.send(json!({ "cmd": "broadcast", "message": { "type": "most", "payload": [1] }, "skip": "simon" }));
    lisa.expect_frame(r#"{"type":"most","payload":[1]}"#);
    s.send(json!({ "cmd": "broadcast", "message": { "type": "everyone" }, "skip": null }));
    simon.expect_frame(r#"{"type":"everyone"}"#); // not "most": skipped
    lisa.expect_frame(r#"{"type":"everyone"}"#);

    s.send(json!({ "cmd": "join", "username": "bob" }));
    s.expect(ev("join", "bob"));
    simon.expect_frame(&joined("bob"));
    lisa.expect_frame(&joined("bob"));

    s.send(json!({ "cmd": "unlink", "username": "lisa" }));
    s.expect(ev("unlink", "lisa"));
    lisa.expect_frame(&unlinked("lisa"));
    simon.expect_frame(&unlinked("lisa"));

    s.send(json!({ "cmd": "kick", "username": "simon" }));
    s.expect(ev("unlink", "simon"));
    s.expect(ev("leave", "simon"));
    simon.expect_frames(&[unlinked("simon"), left("simon")]);

    s.send(json!({ "cmd": "kick", "username": "bob" }));
    s.expect(ev("leave", "bob"));

    s.send(json!({ "cmd": "users" }));
    s.expect(json!({ "event": "users", "users": [{ "username": "lisa", "isLinked": false }] }));
    s.expect_no_line(Duration::from_millis(50));
    simon.expect_silence(Duration::from_millis(10));
    lisa.expect_silence(Duration::from_millis(10));
}

#[test]
fn bad_commands_print_an_error_line_and_the_server_goes_on() {
    let mut s = Serve::start(&[]);
    let _simon = s.linked("simon");

    s.command("hello");
    assert!(s.expect_error().starts_with("command is not JSON"));
    s.command("{\"cmd\":");
    assert!(s.expect_error().starts_with("command is not JSON"));
    s.send(json!({ "command": "users" }));
    assert_eq!(s.expect_error(), r#"command has no string "cmd""#);
    s.send(json!({ "cmd": "fly" }));
    assert_eq!(s.expect_error(), r#"unknown command "fly""#);
    s.send(json!({ "cmd": "send", "username": "ghost", "message": { "type": "x" } }));
    assert_eq!(s.expect_error(), "user ghost does not exist");
    s.send(json!({ "cmd": "send", "username": "simon" }));
    assert_eq!(s.expect_error(), r#"send: "message" is missing"#);
    s.send(json!({ "cmd": "send", "username": "simon", "message": { "payload": 1 } }));
    assert_eq!(s.expect_error(), r#"send: "message" must be an object with a string "type""#);
    s.send(json!({ "cmd": "send", "username": "simon", "message": { "type": "krmx/joined" } }));
    assert!(s.expect_error().contains("krmx/"));
    s.send(json!({ "cmd": "broadcast", "message": { "type": "x" }, "skip": 3 }));
    assert_eq!(s.expect_error(), r#"broadcast: "skip" must be a string"#);
    s.send(json!({ "cmd": "join", "username": "simon" }));
    assert_eq!(s.expect_error(), "user simon already exists");
    s.send(json!({ "cmd": "kick" }));
    assert_eq!(s.expect_error(), r#"kick: "username" must be a string"#);
    s.send(json!({ "cmd": "accept", "id": 7 }));
    assert!(s.expect_error().starts_with("authentication request 7 is not pending"));
    s.send(json!({ "cmd": "reject", "id": "x" }));
    assert_eq!(s.expect_error(), r#"reject: "id" must be a number"#);
    // Blank lines are ignored.
    s.command("   ");

    s.send(json!({ "cmd": "users" }));
    s.expect(json!({ "event": "users", "users": [{ "username": "simon", "isLinked": true }] }));
    assert!(s.is_running());
}

// ----- options --------------------------------------------------------------------------------

#[test]
fn relay_sends_every_custom_message_unchanged_to_every_linked_client() {
    let s = Serve::start(&["--relay"]);
    let mut simon = s.linked("simon");
    let mut lisa = s.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);

    let text = r#"{"type":"move","payload":{"z":1,"a":[1,2.5,{"b":null}],"s":"é\"\n"}}"#;
    simon.send_text(text);
    s.expect(json!({ "event": "message", "username": "simon", "message": serde_json::from_str::<Value>(text).unwrap() }));
    simon.expect_frame(text);
    lisa.expect_frame(text);

    lisa.send_text(r#"{"type":"bare"}"#);
    s.expect(json!({ "event": "message", "username": "lisa", "message": { "type": "bare" } }));
    simon.expect_frame(r#"{"type":"bare"}"#);
    lisa.expect_frame(r#"{"type":"bare"}"#);

    // An unlinked connection's message is not relayed.
    let mut stranger = s.connect("stranger");
    stranger.send_text(r#"{"type":"spam"}"#);
    stranger.expect_frame(&rejected("unlinked connection"));
    s.expect_no_line(Duration::from_millis(50));
    simon.expect_silence(Duration::from_millis(10));
}

#[test]
fn without_relay_messages_are_not_echoed() {
    let s = Serve::start(&[]);
    let mut simon = s.linked("simon");
    simon.send_text(r#"{"type":"move"}"#);
    s.expect(json!({ "event": "message", "username": "simon", "message": { "type": "move" } }));
    simon.expect_silence(Duration::from_millis(100));
}

#[test]
fn auth_lets_stdin_accept_or_reject_each_link() {
    let mut s = Serve::start(&["--auth", "--auth-timeout-ms", "300"]);
    let mut c = s.connect("c");

    // Reject with a reason.
    c.send_text(&link_message("simon", CLIENT_VERSION, Some("guess")));
    let request = s.next_line();
    assert_eq!(request["event"], "authenticate");
    let id = request["id"].as_u64().expect("a numeric id");
    assert_eq!(request, json!({ "event": "authenticate", "id": id, "username": "simon", "isNewUser": true, "auth": "guess" }));
    s.send(json!({ "cmd": "reject", "id": id, "reason": "wrong password" }));
    c.expect_frame(&rejected("wrong password"));

    // Reject without a reason.
    c.send_link("simon");
    let request = s.next_line();
    assert_eq!(request["auth"], Value::Null);
    s.send(json!({ "cmd": "reject", "id": request["id"] }));
    c.expect_frame(&rejected("authentication failed"));

    // No answer in time.
    c.send_link("simon");
    let request = s.next_line();
    assert_eq!(request["event"], "authenticate");
    c.expect_frame(&rejected("authentication timeout"));
    s.send(json!({ "cmd": "accept", "id": request["id"] }));
    assert!(s.expect_error().contains("is not pending"));

    // Accept.
    c.send_text(&link_message("simon", CLIENT_VERSION, Some("secret")));
    let request = s.next_line();
    assert_eq!(request["auth"], "secret");
    s.send(json!({ "cmd": "accept", "id": request["id"] }));
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    s.expect(ev("join", "simon"));
    s.expect(ev("link", "simon"));
}

#[test]
fn no_new_users_links_only_users_joined_on_stdin() {
    let mut s = Serve::start(&["--no-new-users"]);
    let mut c = s.connect("c");
    c.send_link("simon");
    c.expect_frame(&rejected("server is not accepting new users"));
    s.expect_no_line(Duration::from_millis(50));

    s.send(json!({ "cmd": "join", "username": "simon" }));
    s.expect(ev("join", "simon"));
    c.send_link("simon");
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    s.expect(ev("link", "simon"));
}

#[test]
fn path_and_query_options_are_required_on_the_handshake() {
    let s = Serve::start(&["--path", "/game", "--query", "krmx=1", "--query", "token", "--no-query", "debug"]);
    let base = format!("ws://127.0.0.1:{}", s.port);
    assert_eq!(handshake_status(&format!("{base}/?krmx=1&token=t")), 404);
    assert_eq!(handshake_status(&format!("{base}/game?token=t")), 400);
    assert_eq!(handshake_status(&format!("{base}/game?krmx=0&token=t")), 400);
    assert_eq!(handshake_status(&format!("{base}/game?krmx=1")), 400);
    assert_eq!(handshake_status(&format!("{base}/game?krmx=1&token=t&debug=1")), 400);
    s.expect_no_line(Duration::from_millis(50));

    let mut c = connect(&format!("{base}/game?krmx=1&token=t")).labelled("c");
    c.link("simon");
    s.expect(ev("join", "simon"));
    s.expect(ev("link", "simon"));
}

#[test]
fn a_taken_port_prints_an_error_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_krmx"))
        .args(["serve", "--port", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let line: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(line["event"], "error");
    assert!(line["error"].as_str().unwrap().contains(&port), "{line}");
}

#[test]
fn bad_options_exit_2_with_usage() {
    for args in [&["serve", "--bogus"][..], &["serve", "--port"], &["serve", "--port", "x"], &["nope"], &[]] {
        let output = Command::new(env!("CARGO_BIN_EXE_krmx")).args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage: krmx serve"), "{args:?}");
    }
}

// ----- lifecycle ------------------------------------------------------------------------------

#[test]
fn stdin_closed_at_start_does_not_stop_the_server() {
    let mut s = Serve::start_with(&[], false);
    let mut simon = s.linked("simon");
    simon.send_text(r#"{"type":"hello"}"#);
    s.expect(json!({ "event": "message", "username": "simon", "message": { "type": "hello" } }));
    assert!(s.is_running());

    s.signal(libc::SIGTERM);
    s.expect(ev("unlink", "simon"));
    s.expect(ev("leave", "simon"));
    s.expect(json!({ "event": "close" }));
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigterm_closes_gracefully_and_exits_0() {
    let mut s = Serve::start(&[]);
    let mut simon = s.linked("simon");
    let mut lisa = s.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);

    s.signal(libc::SIGTERM);
    s.expect(ev("unlink", "simon"));
    s.expect(ev("leave", "simon"));
    s.expect(ev("unlink", "lisa"));
    s.expect(ev("leave", "lisa"));
    assert_eq!(s.next_text(), r#"{"event":"close"}"#);
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");

    let (frames, close) = simon.recv_until_closed();
    assert_eq!(frames, vec![unlinked("simon"), left("simon")]);
    assert!(close.is_some());
    let (frames, close) = lisa.recv_until_closed();
    assert_eq!(frames, vec![unlinked("simon"), left("simon"), unlinked("lisa"), left("lisa")]);
    assert!(close.is_some());
}

#[test]
fn sigint_closes_gracefully_too() {
    let mut s = Serve::start(&[]);
    s.signal(libc::SIGINT);
    s.expect(json!({ "event": "close" }));
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn protocol_version_ping_interval_message_size_and_host_options() {
    let mut s = Serve::start(&[
        "--host", "127.0.0.1", "--protocol-version", "0.6.1", "--ping-interval-ms", "150",
        "--max-message-bytes", "1024",
    ]);
    let mut old = s.connect("old");
    old.send_link("simon");
    old.expect_frame(&rejected("krmx server version mismatch (server=0.6.*,client=0.5.4)"));
    old.send_text(&link_message("simon", "0.6.0", None));
    old.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    s.expect(json!({ "event": "join", "username": "simon" }));
    s.expect(json!({ "event": "link", "username": "simon" }));

    // A message over --max-message-bytes closes that connection with 1009 (and unlinks its user).
    old.send_text(&frame("chat/say", Some(json!("x".repeat(2000)))));
    let close = old.expect_closed().expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    s.expect(json!({ "event": "unlink", "username": "simon" }));

    // A client that never answers pings is closed after a missed ping (--ping-interval-ms).
    let mut silent = s.connect("silent");
    silent.send_text(&link_message("lisa", "0.6.0", None));
    s.expect(json!({ "event": "join", "username": "lisa" }));
    s.expect(json!({ "event": "link", "username": "lisa" }));
    // The test reads only the server's stdout meanwhile, so `silent` answers no ping.
    s.expect(json!({ "event": "unlink", "username": "lisa" }));
    let (_frames, close) = silent.recv_until_closed();
    assert_eq!(close.map(|c| c.reason.to_string()).as_deref(), Some("ping timeout"));
    s.send(json!({ "cmd": "close" }));
    s.expect(json!({ "event": "leave", "username": "simon" }));
    s.expect(json!({ "event": "leave", "username": "lisa" }));
    s.expect(json!({ "event": "close" }));
}

#[test]
fn limit_options_refuse_connections_and_users_and_close_idle_connections() {
    let s = Serve::start(&[
        "--max-connections", "3", "--max-connections-per-address", "2", "--max-users", "1",
        "--link-timeout-ms", "300", "--handshake-timeout-ms", "5000", "--max-queued-bytes", "65536",
    ]);
    let mut simon = s.linked("simon");
    let mut second = s.connect("second");
    // Both places of 127.0.0.1 are taken.
    assert_eq!(handshake_status(&s.url()), 503);
    // --max-users 1: a second user is refused.
    second.send_link("lisa");
    second.expect_frame(&rejected("server is full"));
    // --link-timeout-ms: the connection that did not link is closed; the linked one stays.
    let close = second.expect_closed().expect("a close frame");
    assert_eq!(close.reason.as_str(), "link timeout");
    simon.expect_silence(std::time::Duration::from_millis(100));
    simon.send_text(&frame("chat/say", None));
    s.expect(json!({ "event": "message", "username": "simon", "message": { "type": "chat/say" } }));
}
