//! Interoperability: our client, driven only through the exported C functions (`krmx_client_*`,
//! `krmx_send`) as a C host drives them, against the unmodified npm package `@krmx/server` 0.5.5.
//!
//! `tests/interop/server_host.js` hosts the package: it prints the server's events as JSON lines
//! and runs JSON-line commands from its stdin (send, broadcast, join, kick, unlink, deny, users,
//! close). Every event of either side is rendered to a line ("join alice", "reject invalid
//! username", ...) and whole sequences are compared exactly. Waits are bounded (a hang guard,
//! never a duration assertion).
//!
//! Needs Node.js (20 or newer) and npm on PATH; the npm packages are installed from
//! `tests/interop/package-lock.json` with `npm ci` when `node_modules` is missing or stale.

mod common;

use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use common::child::{write_line, Lines, Process};
use common::ffi::client::{reconnecting, Client};
use common::ffi::{last_error, users};
use common::node::{ensure_node_modules, interop_dir};
use krmx::ffi::client::KrmxClientStatus::*;
use krmx::ffi::result::KrmxResult::*;
use serde_json::{json, Value};

/// How long any one expected event (of either side) may take before the test fails: a hang guard.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Starting or stopping a Node.js process may take longer on a busy machine.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

/// The reason the reference server gives a client of another major.minor version.
const VERSION_MISMATCH_0_4_0: &str = "krmx server version mismatch (server=0.5.*,client=0.4.0)";

// --- the npm server ----------------------------------------------------------------------------

/// One line of `server_host.js` rendered compactly: `join alice`, `message alice {JSON}`,
/// `authenticate alice new=true auth=(none)`, `users alice(linked) bob(unlinked)`, ...
/// A line with fields the test does not know renders as raw JSON, so it mismatches.
fn render_node(line: &Value) -> String {
    let object = line.as_object().expect("every line is a JSON object");
    let text = |key: &str| line[key].as_str().unwrap_or_else(|| panic!("no string {key} in {line}")).to_string();
    let rendered = match (line["event"].as_str(), object.len()) {
        (Some("listen"), 2) => line["port"].as_u64().map(|port| format!("listen {port}")),
        (Some("authenticate"), 4) => Some(format!(
            "authenticate {} new={} auth={}",
            text("username"),
            line["isNewUser"].as_bool().expect("isNewUser is a boolean"),
            line["auth"].as_str().unwrap_or("(none)")
        )),
        (Some(event @ ("join" | "link" | "unlink" | "leave")), 2) => Some(format!("{event} {}", text("username"))),
        (Some("message"), 3) => Some(format!("message {} {}", text("username"), line["message"])),
        (Some("users"), 2) => {
            let users = line["users"].as_array().expect("users is an array");
            let users: Vec<String> = users
                .iter()
                .map(|user| match (user.as_object().map(|o| o.len()), user["username"].as_str(), user["isLinked"].as_bool()) {
                    (Some(2), Some(name), Some(true)) => format!(" {name}(linked)"),
                    (Some(2), Some(name), Some(false)) => format!(" {name}(unlinked)"),
                    _ => format!(" {user}"),
                })
                .collect();
            Some(format!("users{}", users.concat()))
        }
        (Some("ok"), 2) => Some(format!("ok {}", text("cmd"))),
        (Some("error"), 3) => Some(format!("error {}: {}", line["cmd"], text("error"))),
        (Some("log"), 3) => Some(format!("log {}: {}", text("severity"), text("text"))),
        (Some("close"), 1) => Some("close".to_string()),
        _ => None,
    };
    rendered.unwrap_or_else(|| format!("unexpected line {line}"))
}

/// `node server_host.js`: the unmodified `@krmx/server`, listening on 127.0.0.1.
struct NodeServer {
    process: Process,
    stdin: ChildStdin,
    events: Lines,
    port: u16,
    seen: Vec<String>,
}

impl NodeServer {
    /// Starts a server on a free port.
    fn start(args: &[&str]) -> NodeServer {
        NodeServer::start_on(0, args)
    }

    /// Starts a server on `port` (0: a free one).
    fn start_on(port: u16, args: &[&str]) -> NodeServer {
        ensure_node_modules();
        let mut command = Command::new("node");
        command.arg(interop_dir().join("server_host.js")).args(["--port", &port.to_string()]).args(args);
        command.current_dir(interop_dir());
        let mut process = Process::spawn("node", &mut command, Stdio::piped()).unwrap_or_else(|e| panic!("{e}"));
        let stdin = process.take_stdin();
        let events = Lines::new("node", process.take_stdout());
        let mut server = NodeServer { process, stdin, events, port, seen: Vec::new() };
        let listen = server.next_within(PROCESS_TIMEOUT, "the listen event");
        let actual: u16 = listen
            .strip_prefix("listen ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("expected the listen event first, got {listen}"));
        assert!(port == 0 || actual == port, "asked for port {port}, listening on {actual}");
        server.port = actual;
        server
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn command(&mut self, command: Value) {
        write_line("the node server", &mut self.stdin, &command);
    }

    fn next_within(&mut self, timeout: Duration, waiting_for: &str) -> String {
        let line = self
            .events
            .next(timeout, waiting_for)
            .unwrap_or_else(|| panic!("the node server exited while waiting for {waiting_for} (it printed {:?})", self.seen));
        let line: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("the node server printed a line that is not JSON ({e}): {line}"));
        let line = render_node(&line);
        self.seen.push(line.clone());
        line
    }

    /// The next events are exactly `expected`, in this order.
    fn expect(&mut self, expected: &[&str]) {
        let mut got = Vec::new();
        for want in expected {
            got.push(self.next_within(TIMEOUT, &format!("server event {want:?}")));
        }
        assert_eq!(got, expected, "node server events (everything it printed: {:?})", self.seen);
    }

    /// Asks for the user table and checks it. The answer comes in order with the events, so it
    /// also proves that no other event came before it.
    fn expect_users(&mut self, users: &[(&str, bool)]) {
        self.command(json!({ "cmd": "users" }));
        let users: String = users
            .iter()
            .map(|(name, linked)| format!(" {name}({})", if *linked { "linked" } else { "unlinked" }))
            .collect();
        self.expect(&[&format!("users{users}")]);
    }

    fn send(&mut self, username: &str, message: Value) {
        self.command(json!({ "cmd": "send", "username": username, "message": message }));
    }

    fn broadcast(&mut self, message: Value, skip: Option<&str>) {
        self.command(json!({ "cmd": "broadcast", "message": message, "skip": skip }));
    }

    fn user_command(&mut self, cmd: &str, username: &str) {
        self.command(json!({ "cmd": cmd, "username": username }));
    }

    /// From now on the authenticate hook rejects links to `username` with `reason` (None: accepts).
    fn deny(&mut self, username: &str, reason: Option<&str>) {
        self.command(json!({ "cmd": "deny", "username": username, "reason": reason }));
        self.expect(&["ok deny"]);
    }

    /// Closes the server: `events` (every user leaving), then `close`, then exit status 0 and
    /// nothing on stderr. Returns the port it listened on.
    fn close(mut self, events: &[&str]) -> u16 {
        self.command(json!({ "cmd": "close" }));
        let mut expected = events.to_vec();
        expected.push("close");
        self.expect(&expected);
        let status = self.process.wait(PROCESS_TIMEOUT);
        assert!(status.success(), "the node server exited with {status}");
        assert_eq!(self.events.next(TIMEOUT, "the end of the node server's output"), None);
        assert_eq!(self.process.stderr(), "", "the node server wrote to stderr");
        self.port
    }

    /// Kills the node process (SIGKILL): its sockets close without a goodbye. Returns its port.
    fn kill(mut self) -> u16 {
        self.process.child.kill().expect("kill the node server");
        self.process.wait(PROCESS_TIMEOUT);
        self.port
    }
}

fn message(kind: &str, payload: Value) -> Value {
    json!({ "type": kind, "payload": payload })
}

// --- our client, through the C API -------------------------------------------------------------

/// Connects a client of ours as a new user; `table` is the server's users before it, in join
/// order. Checks what the node server saw.
fn join_new(server: &mut NodeServer, label: &str, table: &[(&str, bool)]) -> Client {
    let mut client = Client::new(label, |_| {});
    client.connect_to(&server.url());
    client.link(label, None);
    let mut table = table.to_vec();
    table.push((label, true));
    client.expect_linked(&table);
    server.expect(&[&format!("authenticate {label} new=true auth=(none)"), &format!("join {label}"), &format!("link {label}")]);
    client
}

// =============================================================================================
// The tests
// =============================================================================================

/// Connect and link: ACCEPT, then JOIN/LINK for every user in join order; a second client of ours
/// linking shows up as JOIN and LINK at the first; a user the server joined links as known.
#[test]
fn linking_builds_the_user_table_in_join_order() {
    let mut server = NodeServer::start(&[]);
    let mut alice = Client::new("alice", |_| {});
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_INITIALIZING);
    alice.connect(&server.url());
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTING);
    alice.expect(&["connect"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    assert_eq!(alice.username(), None);
    // An open connection that has not linked is invisible to the server's application.
    server.expect_users(&[]);

    alice.link("alice", Some("alice-token"));
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKING);
    assert_eq!(alice.username().as_deref(), Some("alice"));
    alice.expect(&["accept", "join alice", "link alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(alice.users(), users(&[("alice", true)]));
    server.expect(&["authenticate alice new=true auth=alice-token", "join alice", "link alice"]);
    server.expect_users(&[("alice", true)]);

    // A second client of ours: it gets the whole table, the first sees it join and link.
    let mut bob = Client::new("bob", |_| {});
    bob.connect_to(&server.url());
    bob.link("bob", None);
    bob.expect_linked(&[("alice", true), ("bob", true)]);
    alice.expect(&["join bob", "link bob"]);
    assert_eq!(alice.users(), users(&[("alice", true), ("bob", true)]));
    server.expect(&["authenticate bob new=true auth=(none)", "join bob", "link bob"]);
    server.expect_users(&[("alice", true), ("bob", true)]);

    // The server joins a user itself: everyone linked sees it, unlinked.
    server.user_command("join", "carol");
    server.expect(&["join carol"]);
    alice.expect(&["join carol"]);
    bob.expect(&["join carol"]);
    assert_eq!(bob.users(), users(&[("alice", true), ("bob", true), ("carol", false)]));

    // Linking to that known user: no join anywhere, just the link.
    let mut carol = Client::new("carol", |_| {});
    carol.connect_to(&server.url());
    carol.link("carol", None);
    carol.expect_linked(&[("alice", true), ("bob", true), ("carol", true)]);
    server.expect(&["authenticate carol new=false auth=(none)", "link carol"]);
    alice.expect(&["link carol"]);
    bob.expect(&["link carol"]);
    assert_eq!(alice.users(), users(&[("alice", true), ("bob", true), ("carol", true)]));
    server.expect_users(&[("alice", true), ("bob", true), ("carol", true)]);
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect_nothing(0);
    }

    server.close(&["unlink alice", "leave alice", "unlink bob", "leave bob", "unlink carol", "leave carol"]);
}

/// Custom messages: ours arrive at the node server's message event with exactly their type and
/// payload; the server's send and broadcast (with skip) arrive at ours with exact JSON text.
#[test]
fn messages_keep_their_type_and_payload_both_ways() {
    let mut server = NodeServer::start(&[]);
    let mut alice = join_new(&mut server, "alice", &[]);
    let mut bob = join_new(&mut server, "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);

    // Client to server. The payload JSON text goes through as the same JSON value.
    let payload = json!({
        "text": "héllo ✓ \"quoted\" back\\slash\nnew line\ttab \u{1} 😀",
        "n": 1, "neg": -2.5, "big": 9007199254740991_i64, "exp": 0.000125,
        "nested": [true, false, null, { "x": 1.5, "y": [] }], "empty": {},
    });
    assert_eq!(alice.send("chat/say", Some(&payload.to_string())), KRMX_OK, "{}", last_error());
    server.expect(&[&format!("message alice {}", message("chat/say", payload.clone()))]);
    // Without a payload, the message has none (not even null).
    assert_eq!(bob.send("ping", None), KRMX_OK, "{}", last_error());
    server.expect(&[r#"message bob {"type":"ping"}"#]);
    for (kind, payload) in [("num", "42"), ("str", r#""just a string""#), ("nul", "null"), ("arr", "[1,\"two\",{}]")] {
        assert_eq!(alice.send(kind, Some(payload)), KRMX_OK, "{}", last_error());
        server.expect(&[&format!(r#"message alice {{"type":"{kind}","payload":{payload}}}"#)]);
    }
    // Whitespace in the host's JSON text is not part of the value.
    assert_eq!(alice.send("spaced", Some(" { \"a\" : [ 1 , 2 ] } ")), KRMX_OK);
    server.expect(&[r#"message alice {"type":"spaced","payload":{"a":[1,2]}}"#]);
    // Refused locally: nothing reaches the server (the users answer comes next).
    assert_eq!(alice.send("krmx/custom", None), KRMX_ERR_RESERVED_TYPE);
    assert_eq!(alice.send("bad", Some("{not json")), KRMX_ERR_INVALID_JSON);
    server.expect_users(&[("alice", true), ("bob", true)]);

    // Server to one client.
    server.send("bob", message("direct", json!({ "n": [1, 2, 3], "s": "ünïcödé ❤", "f": 0.5 })));
    bob.expect(&[r#"message direct {"n":[1,2,3],"s":"ünïcödé ❤","f":0.5}"#]);
    server.send("alice", json!({ "type": "bare" }));
    alice.expect(&["message bare (none)"]);
    server.send("alice", message("nothing", Value::Null));
    alice.expect(&["message nothing null"]);
    // Extra top-level fields are ignored.
    server.send("alice", json!({ "type": "extra", "payload": 7, "extra": { "ignored": true } }));
    alice.expect(&["message extra 7"]);

    // Broadcast to everyone linked, then skipping bob.
    server.broadcast(message("news", json!({ "headline": "krmx ❤ npm" })), None);
    alice.expect(&[r#"message news {"headline":"krmx ❤ npm"}"#]);
    bob.expect(&[r#"message news {"headline":"krmx ❤ npm"}"#]);
    server.broadcast(message("whisper", json!("not for bob")), Some("bob"));
    alice.expect(&[r#"message whisper "not for bob""#]);
    // What bob gets next is the message sent after the whisper: the whisper skipped him.
    server.send("bob", message("after", json!(1)));
    bob.expect(&["message after 1"]);

    // Sending to a user that is not linked is the node server's error; nothing is sent.
    bob.unlink();
    bob.expect(&["unlink bob"]);
    alice.expect(&["unlink bob"]);
    server.expect(&["unlink bob"]);
    server.send("bob", message("lost", json!(0)));
    server.expect(&[r#"error "send": cannot send a message to a user that is not linked to a connection"#]);
    server.broadcast(message("to-linked", json!(2)), None);
    alice.expect(&["message to-linked 2"]);
    for client in [&mut alice, &mut bob] {
        client.expect_nothing(0);
    }

    server.close(&["unlink alice", "leave alice", "leave bob"]);
}

/// Unlink, relink, leave, kick, the server's unlink, and disconnect, each seen exactly by the node
/// server, the client itself and another client.
#[test]
fn unlink_relink_leave_kick_server_unlink_and_disconnect() {
    let mut server = NodeServer::start(&[]);
    let mut alice = join_new(&mut server, "alice", &[]);
    let mut bob = join_new(&mut server, "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);

    // Unlink: the client is connected again, with an empty table.
    alice.unlink();
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_UNLINKING);
    alice.expect(&["unlink alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    assert_eq!(alice.username(), None);
    assert_eq!(alice.send("chat", None), KRMX_ERR_WRONG_STATUS);
    bob.expect(&["unlink alice"]);
    assert_eq!(bob.users(), users(&[("alice", false), ("bob", true)]));
    server.expect(&["unlink alice"]);
    server.expect_users(&[("alice", false), ("bob", true)]);

    // Relink as the known user: no join.
    alice.link("alice", None);
    alice.expect_linked(&[("alice", true), ("bob", true)]);
    bob.expect(&["link alice"]);
    server.expect(&["authenticate alice new=false auth=(none)", "link alice"]);

    // Leave: UNLINK then LEAVE of itself; the server forgets alice.
    alice.leave();
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_UNLINKING);
    alice.expect(&["unlink alice", "leave alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    bob.expect(&["unlink alice", "leave alice"]);
    assert_eq!(bob.users(), users(&[("bob", true)]));
    server.expect(&["unlink alice", "leave alice"]);
    server.expect_users(&[("bob", true)]);

    // Link again, as a new user now (last in join order), then the server kicks.
    alice.link("alice", None);
    alice.expect_linked(&[("bob", true), ("alice", true)]);
    bob.expect(&["join alice", "link alice"]);
    server.expect(&["authenticate alice new=true auth=(none)", "join alice", "link alice"]);
    server.user_command("kick", "alice");
    server.expect(&["unlink alice", "leave alice"]);
    alice.expect(&["unlink alice", "leave alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    bob.expect(&["unlink alice", "leave alice"]);
    assert_eq!(bob.users(), users(&[("bob", true)]));

    // Link again, then the server unlinks.
    alice.link("alice", None);
    alice.expect_linked(&[("bob", true), ("alice", true)]);
    bob.expect(&["join alice", "link alice"]);
    server.expect(&["authenticate alice new=true auth=(none)", "join alice", "link alice"]);
    server.user_command("unlink", "alice");
    server.expect(&["unlink alice"]);
    alice.expect(&["unlink alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    bob.expect(&["unlink alice"]);
    assert_eq!(bob.users(), users(&[("bob", true), ("alice", false)]));

    // Link again, then disconnect: the server unlinks alice; our side closes.
    alice.link("alice", None);
    alice.expect_linked(&[("bob", true), ("alice", true)]);
    bob.expect(&["link alice"]);
    server.expect(&["authenticate alice new=false auth=(none)", "link alice"]);
    alice.disconnect();
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSING);
    alice.expect(&["close disconnected by the client"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSED);
    assert_eq!(alice.users(), []);
    assert_eq!(alice.username(), None);
    server.expect(&["unlink alice"]);
    bob.expect(&["unlink alice"]);
    server.expect_users(&[("bob", true), ("alice", false)]);

    // A closed client connects again and links.
    alice.connect_to(&server.url());
    alice.link("alice", None);
    alice.expect_linked(&[("bob", true), ("alice", true)]);
    bob.expect(&["link alice"]);
    server.expect(&["authenticate alice new=false auth=(none)", "link alice"]);

    // Disconnecting while connected but not linked: the server's application sees nothing.
    alice.unlink();
    alice.expect(&["unlink alice"]);
    bob.expect(&["unlink alice"]);
    server.expect(&["unlink alice"]);
    alice.disconnect();
    alice.expect(&["close disconnected by the client"]);
    server.expect_users(&[("bob", true), ("alice", false)]);
    for client in [&mut alice, &mut bob] {
        client.expect_nothing(0);
    }

    server.close(&["unlink bob", "leave bob", "leave alice"]);
}

/// Rejected links carry the reference server's exact reasons; the connection stays open and may
/// link afterwards; nothing reaches the server's application (but authentication).
#[test]
fn rejections_carry_the_reference_servers_exact_reasons() {
    let mut server = NodeServer::start(&[]);
    let mut alice = join_new(&mut server, "alice", &[]);

    let mut mallory = Client::new("mallory", |_| {});
    mallory.connect_to(&server.url());
    for (username, reason) in [
        ("1bad", "invalid username"),
        ("x", "invalid username"),
        ("a..b", "invalid username"),
        ("alice", "user alice is already linked to a connection"),
    ] {
        mallory.link(username, None);
        assert_eq!(mallory.status(), KRMX_CLIENT_STATUS_LINKING);
        mallory.expect(&[&format!("reject {reason}")]);
        assert_eq!(mallory.status(), KRMX_CLIENT_STATUS_CONNECTED);
        assert_eq!(mallory.users(), []);
        assert_eq!(mallory.username(), None);
    }
    server.expect_users(&[("alice", true)]);

    // The server's authenticate hook rejects with its own reason, and sees our auth.
    server.deny("mallory", Some("mallory is banned"));
    mallory.link("mallory", None);
    mallory.expect(&["reject mallory is banned"]);
    server.expect(&["authenticate mallory new=true auth=(none)"]);
    mallory.link("mallory", Some("forged token ✓"));
    mallory.expect(&["reject mallory is banned"]);
    server.expect(&["authenticate mallory new=true auth=forged token ✓"]);
    server.expect_users(&[("alice", true)]);

    // After all that the same connection links fine.
    server.deny("mallory", None);
    mallory.link("mallory", None);
    mallory.expect_linked(&[("alice", true), ("mallory", true)]);
    server.expect(&["authenticate mallory new=true auth=(none)", "join mallory", "link mallory"]);
    alice.expect(&["join mallory", "link mallory"]);

    // Another major.minor version is rejected with the version in the reason; another patch is fine.
    let mut old = Client::new("old", |config| config.protocol_version = c"0.4.0".as_ptr());
    old.connect_to(&server.url());
    old.link("old", None);
    old.expect(&[&format!("reject {VERSION_MISMATCH_0_4_0}")]);
    assert_eq!(old.status(), KRMX_CLIENT_STATUS_CONNECTED);
    let mut patch = Client::new("patch", |config| config.protocol_version = c"0.5.0".as_ptr());
    patch.connect_to(&server.url());
    patch.link("patch", None);
    patch.expect_linked(&[("alice", true), ("mallory", true), ("patch", true)]);
    server.expect(&["authenticate patch new=true auth=(none)", "join patch", "link patch"]);
    alice.expect(&["join patch", "link patch"]);
    mallory.expect(&["join patch", "link patch"]);
    server.expect_users(&[("alice", true), ("mallory", true), ("patch", true)]);
    for client in [&mut alice, &mut mallory, &mut old, &mut patch] {
        client.expect_nothing(0);
    }

    server.close(&["unlink alice", "leave alice", "unlink mallory", "leave mallory", "unlink patch", "leave patch"]);
}

/// A server that accepts no new users (`acceptNewUsers: false`) rejects unknown names with its
/// reason; a user it joined itself may link.
#[test]
fn a_server_without_new_users_rejects_unknown_names() {
    let mut server = NodeServer::start(&["--no-new-users"]);
    let mut dave = Client::new("dave", |_| {});
    dave.connect_to(&server.url());
    dave.link("dave", None);
    dave.expect(&["reject server is not accepting new users"]);
    assert_eq!(dave.status(), KRMX_CLIENT_STATUS_CONNECTED);
    server.user_command("join", "dave");
    server.expect(&["join dave"]);
    dave.link("dave", None);
    dave.expect_linked(&[("dave", true)]);
    server.expect(&["authenticate dave new=false auth=(none)", "link dave"]);
    dave.expect_nothing(0);
    server.close(&["unlink dave", "leave dave"]);
}

/// A server with `metadata: true` adds a `metadata` field to every message it sends, the
/// protocol's own included; our client ignores it.
#[test]
fn metadata_on_every_message_is_ignored() {
    let mut server = NodeServer::start(&["--metadata"]);
    let mut alice = join_new(&mut server, "alice", &[]);
    let mut bob = join_new(&mut server, "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);
    server.send("alice", message("direct", json!({ "a": 1 })));
    alice.expect(&[r#"message direct {"a":1}"#]);
    server.broadcast(message("news", json!([1])), Some("alice"));
    bob.expect(&["message news [1]"]);
    bob.leave();
    bob.expect(&["unlink bob", "leave bob"]);
    alice.expect(&["unlink bob", "leave bob"]);
    server.expect(&["unlink bob", "leave bob"]);
    for client in [&mut alice, &mut bob] {
        client.expect_nothing(0);
    }
    server.close(&["unlink alice", "leave alice"]);
}

/// The reference server never pings; our client's liveness check pings it, and the pongs (which
/// the server's WebSocket library sends by itself) keep a quiet connection alive.
#[test]
fn a_quiet_node_server_stays_alive_through_pongs() {
    let mut server = NodeServer::start(&[]);
    let mut alice = Client::new("alice", |config| config.liveness_timeout_ms = 1000);
    alice.connect_to(&server.url());
    alice.link("alice", None);
    alice.expect_linked(&[("alice", true)]);
    server.expect(&["authenticate alice new=true auth=(none)", "join alice", "link alice"]);
    // Five ping intervals of silence from the application on both sides.
    if let Some(ev) = alice.try_next(Duration::from_millis(2500)) {
        panic!("alice: unexpected event {:?} on a quiet connection (seen {:?})", ev.line, alice.seen);
    }
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    server.expect_users(&[("alice", true)]);
    assert_eq!(alice.send("still-here", None), KRMX_OK);
    server.expect(&[r#"message alice {"type":"still-here"}"#]);
    server.close(&["unlink alice", "leave alice"]);
}

/// The node server closes: every user leaves (each client of ours sees itself unlinked and
/// leaving), then the sockets are terminated and our clients close.
#[test]
fn the_node_server_closing_closes_our_clients() {
    let mut server = NodeServer::start(&[]);
    let mut alice = join_new(&mut server, "alice", &[]);
    let mut bob = join_new(&mut server, "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);
    server.close(&["unlink alice", "leave alice", "unlink bob", "leave bob"]);

    // alice leaves first; once unlinked she hears nothing of bob.
    alice.expect(&["unlink alice", "leave alice"]);
    bob.expect(&["unlink alice", "leave alice", "unlink bob", "leave bob"]);
    for client in [&mut alice, &mut bob] {
        let close = client.next().line;
        assert!(close.starts_with("close "), "{}: expected a close, got {close:?}", client.label);
        assert_eq!(client.status(), KRMX_CLIENT_STATUS_CLOSED);
        assert_eq!(client.users(), []);
        assert_eq!(client.username(), None);
        client.expect_nothing(0);
    }
}

/// The node process dies: our client closes, with no protocol events.
#[test]
fn the_node_process_dying_closes_our_client() {
    let mut server = NodeServer::start(&[]);
    let mut alice = join_new(&mut server, "alice", &[]);
    server.kill();
    let close = alice.next().line;
    assert!(close.starts_with("close "), "expected a close, got {close:?} (seen {:?})", alice.seen);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSED);
    assert_eq!(alice.users(), []);
    alice.expect_nothing(0);
}

/// Reconnect on: the node server closes (or its process dies) and a new one starts on the same
/// port; our client retries until it is back and re-links with the same username and auth.
#[test]
fn reconnect_relinks_after_the_node_server_restarts_on_the_same_port() {
    let mut server = NodeServer::start(&[]);
    let mut alice = Client::new("alice", reconnecting);
    alice.connect_to(&server.url());
    alice.link("alice", Some("alice-token"));
    alice.expect_linked(&[("alice", true)]);
    server.expect(&["authenticate alice new=true auth=alice-token", "join alice", "link alice"]);

    /// With the server gone, attempt 1 finds nothing and attempt 2 is waiting: the client is
    /// reconnecting. (Its timers run inside its poll, so polling makes the attempts happen.)
    fn retrying(alice: &mut Client) {
        alice.expect(&["reconnecting 1", "reconnecting 2"]);
        assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTING);
        assert_eq!(alice.users(), []);
        assert_eq!(alice.send("chat/lost", None), KRMX_ERR_WRONG_STATUS);
    }

    /// With the server back: RECONNECTING for later attempts (normally none: attempt 2 was due
    /// after the server was back), CONNECT, then back as `alice`.
    fn comes_back(alice: &mut Client, server: &mut NodeServer) {
        let mut attempts = Vec::new();
        loop {
            let line = alice.next().line;
            if line == "connect" {
                break;
            }
            let attempt: u32 = line
                .strip_prefix("reconnecting ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("expected reconnecting or connect, got {line:?} (seen {:?})", alice.seen));
            attempts.push(attempt);
        }
        assert!(attempts.iter().copied().eq(3..3 + attempts.len() as u32), "attempts count up: {:?}", alice.seen);
        assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKING);
        alice.expect(&["accept", "reconnect", "join alice", "link alice"]);
        assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
        assert_eq!(alice.username().as_deref(), Some("alice"));
        assert_eq!(alice.users(), users(&[("alice", true)]));
        // The new server never knew alice: she joins it anew.
        server.expect(&["authenticate alice new=true auth=alice-token", "join alice", "link alice"]);
        assert_eq!(alice.send("chat/back", Some(r#"{"ok":true}"#)), KRMX_OK);
        server.expect(&[r#"message alice {"type":"chat/back","payload":{"ok":true}}"#]);
        server.send("alice", message("welcome", json!("back")));
        alice.expect(&[r#"message welcome "back""#]);
    }

    // A graceful close: alice leaves, then the socket goes.
    let port = server.close(&["unlink alice", "leave alice"]);
    alice.expect(&["unlink alice", "leave alice"]);
    retrying(&mut alice);
    let mut server = NodeServer::start_on(port, &[]);
    comes_back(&mut alice, &mut server);

    // The process dies: no goodbye at all.
    let port = server.kill();
    retrying(&mut alice);
    let mut server = NodeServer::start_on(port, &[]);
    comes_back(&mut alice, &mut server);
    alice.expect_nothing(0);

    // Disconnecting ends it for good.
    alice.disconnect();
    alice.expect(&["close disconnected by the client"]);
    server.expect(&["unlink alice"]);
    server.close(&["leave alice"]);
}
