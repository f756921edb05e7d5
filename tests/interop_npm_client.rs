//! Interoperability: the unmodified npm package `@krmx/client` 0.5.4 against `krmx serve`.
//!
//! `tests/interop/client_scenario.js` drives real clients through a scenario and prints what they
//! observe, one JSON line each; at every `{"step":NAME}` line it blocks until this test has played
//! the server host's part (checking the server's events, issuing commands on its stdin) and
//! answered `{"ack":NAME}`. The test then compares, exactly, the server's whole event stream and
//! every client's whole log.
//!
//! Needs Node.js (20 or newer) and npm on PATH; the npm packages are installed from
//! `tests/interop/package-lock.json` with `npm ci` when `node_modules` is missing or stale.

mod common;

use std::collections::BTreeMap;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use common::child::{write_line, Lines, Process};
use common::node::{ensure_node_modules, interop_dir};
use serde_json::{json, Value};

/// How long any single read from a child may block before the test fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(20);

// --- the server host ---------------------------------------------------------------------------

/// `krmx serve --port 0` with its JSON-line events and commands.
struct KrmxServer {
    process: Process,
    stdin: ChildStdin,
    events: Lines,
    port: u16,
}

impl KrmxServer {
    fn start(extra_args: &[&str]) -> KrmxServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_krmx"));
        command.args(["serve", "--port", "0"]).args(extra_args);
        let mut process = Process::spawn("krmx", &mut command, Stdio::piped()).unwrap_or_else(|e| panic!("{e}"));
        let stdin = process.take_stdin();
        let events = Lines::new("krmx", process.take_stdout());
        let listen = events.next_json(TIMEOUT, "the listen event");
        let port = match (listen["event"].as_str(), listen["port"].as_u64()) {
            (Some("listen"), Some(port)) => u16::try_from(port).expect("port fits u16"),
            _ => panic!("expected a listen event first, got {listen}"),
        };
        KrmxServer { process, stdin, events, port }
    }

    fn command(&mut self, command: Value) {
        write_line("krmx", &mut self.stdin, &command);
    }

    fn next_event(&self, waiting_for: &str) -> Value {
        self.events.next_json(TIMEOUT, waiting_for)
    }

    /// The next events are exactly these, in this order.
    fn expect(&self, expected: &[Value]) {
        for want in expected {
            let got = self.next_event(&format!("server event {want}"));
            assert_eq!(got, *want, "unexpected server event");
        }
    }

    /// Asks for the user table and checks it. The answer is printed in order with the events, so
    /// it also proves that no unexpected event came before it.
    fn expect_users(&mut self, users: &[(&str, bool)]) {
        self.command(json!({ "cmd": "users" }));
        let users: Vec<Value> = users.iter().map(|(u, linked)| json!({ "username": u, "isLinked": linked })).collect();
        self.expect(&[json!({ "event": "users", "users": users })]);
    }

    /// The next event is an authentication request with these details; returns its id.
    fn expect_authenticate(&self, username: &str, is_new_user: bool, auth: Option<&str>) -> u64 {
        let got = self.next_event(&format!("authenticate {username}"));
        let id = got["id"].as_u64().unwrap_or_else(|| panic!("authenticate event without a numeric id: {got}"));
        let want = json!({
            "event": "authenticate", "id": id, "username": username, "isNewUser": is_new_user, "auth": auth,
        });
        assert_eq!(got, want, "unexpected server event");
        id
    }

    /// Closes the server: every remaining user leaves, then `close`, then exit status 0.
    fn close(mut self, remaining_users: &[&str]) {
        self.command(json!({ "cmd": "close" }));
        let mut expected: Vec<Value> = remaining_users.iter().map(|u| user_event("leave", u)).collect();
        expected.push(json!({ "event": "close" }));
        self.expect(&expected);
        let status = self.process.wait(TIMEOUT);
        assert!(status.success(), "krmx serve exited with {status}");
        assert_eq!(self.events.next(TIMEOUT, "the end of krmx's output"), None, "krmx printed something after close");
    }
}

fn user_event(event: &str, username: &str) -> Value {
    json!({ "event": event, "username": username })
}

fn message_event(username: &str, message: Value) -> Value {
    json!({ "event": "message", "username": username, "message": message })
}

// --- the client scenario -----------------------------------------------------------------------

/// Runs `client_scenario.js PORT SCENARIO`, calling `on_step` for each step before acknowledging
/// it, and returns each client's log (see [`render`]). A `-- STEP` line goes into every client's
/// log at each step, which anchors each observation to the phase of the scenario it belongs to.
fn run_scenario(
    scenario: &str,
    server: &mut KrmxServer,
    mut on_step: impl FnMut(&str, &mut KrmxServer),
) -> BTreeMap<String, Vec<String>> {
    let script = interop_dir().join("client_scenario.js");
    let mut command = Command::new("node");
    command.arg(&script).arg(server.port.to_string()).arg(scenario).current_dir(interop_dir());
    let mut node = Process::spawn("node", &mut command, Stdio::piped()).unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = node.take_stdin();
    let lines = Lines::new("node", node.take_stdout());

    let mut logs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        let line = lines.next_json(TIMEOUT, "the scenario's next line");
        if let Some(error) = line.get("error") {
            panic!("the scenario failed: {}", error.as_str().unwrap_or_default());
        } else if line.get("done") == Some(&Value::Bool(true)) {
            break;
        } else if let Some(step) = line["step"].as_str() {
            for log in logs.values_mut() {
                log.push(format!("-- {step}"));
            }
            on_step(step, server);
            write_line("node", &mut stdin, &json!({ "ack": step }));
        } else if let Some(client) = line["client"].as_str() {
            logs.entry(client.to_string()).or_default().push(render(&line));
        } else {
            panic!("unexpected line from the scenario: {line}");
        }
    }
    assert_eq!(lines.next(TIMEOUT, "the end of the scenario's output"), None, "the scenario printed something after done");
    let status = node.wait(TIMEOUT);
    assert!(status.success(), "the scenario exited with {status}");
    assert_eq!(node.stderr(), "", "the scenario wrote to stderr");
    logs
}

/// One client observation as a compact line:
/// - `EVENT ARG…` for an event (a string argument as is, anything else as JSON),
/// - `state STATUS USERNAME|- [USER(linked|unlinked), …]` for the client's own view of itself,
/// - `rejected: REASON` for a rejected `link()`, `log SEVERITY: TEXT` for a library log line.
fn render(line: &Value) -> String {
    if let Some(event) = line["event"].as_str() {
        let args = line["args"].as_array().expect("an event has args");
        let mut text = event.to_string();
        for arg in args {
            text.push(' ');
            match arg {
                Value::String(s) => text.push_str(s),
                other => text.push_str(&other.to_string()),
            }
        }
        text
    } else if let Some(state) = line.get("state") {
        let users = state["users"].as_array().expect("state has users");
        // Exactly {username, isLinked} renders compactly; anything else stays JSON and mismatches.
        let users: Vec<String> = users
            .iter()
            .map(|user| {
                let fields = user.as_object().map(|o| o.len());
                match (fields, user["username"].as_str(), user["isLinked"].as_bool()) {
                    (Some(2), Some(name), Some(true)) => format!("{name}(linked)"),
                    (Some(2), Some(name), Some(false)) => format!("{name}(unlinked)"),
                    _ => user.to_string(),
                }
            })
            .collect();
        let username = state["username"].as_str().unwrap_or("-");
        format!("state {} {username} [{}]", state["status"].as_str().unwrap_or("?"), users.join(", "))
    } else if let Some(reason) = line["rejected"].as_str() {
        format!("rejected: {reason}")
    } else if let Some(severity) = line["log"].as_str() {
        format!("log {severity}: {}", line["text"].as_str().unwrap_or_default())
    } else {
        panic!("unexpected client line: {line}")
    }
}

fn assert_log(logs: &BTreeMap<String, Vec<String>>, client: &str, expected: &[&str]) {
    let log = logs.get(client).unwrap_or_else(|| panic!("client {client} logged nothing"));
    assert_eq!(log, expected, "the log of client {client}");
}

// --- the tests ---------------------------------------------------------------------------------

#[test]
fn npm_client_links_exchanges_messages_unlinks_and_leaves() {
    ensure_node_modules();
    let mut server = KrmxServer::start(&[]);
    let chat = json!({
        "type": "chat/say",
        "payload": { "text": "héllo from alice ✓", "n": 1, "nested": [true, null, { "x": 1.5 }] },
    });
    let logs = run_scenario("main", &mut server, |step, server| match step {
        // Connections that have not linked are invisible to the application (step 8 of the
        // protocol); the next exact expectation would catch any event they caused.
        "connected" => {}
        "alice-linked" => {
            server.expect(&[user_event("join", "alice"), user_event("link", "alice")]);
            server.expect_users(&[("alice", true)]);
        }
        "bob-linked" => {
            server.expect(&[user_event("join", "bob"), user_event("link", "bob")]);
            server.expect_users(&[("alice", true), ("bob", true)]);
        }
        "alice-sent" => server.expect(&[message_event("alice", chat.clone())]),
        // A message without payload reaches the application without one.
        "bob-sent" => server.expect(&[message_event("bob", json!({ "type": "ping" }))]),
        "host-messages" => {
            let news = json!({ "type": "news", "payload": { "headline": "krmx ❤ npm" } });
            server.command(json!({ "cmd": "broadcast", "message": news }));
            let whisper = json!({ "type": "whisper", "payload": "not for bob" });
            server.command(json!({ "cmd": "broadcast", "message": whisper, "skip": "bob" }));
            let direct = json!({ "type": "direct", "payload": { "n": [1, 2, 3] } });
            server.command(json!({ "cmd": "send", "username": "bob", "message": direct }));
        }
        // Rejected links and the unlinked carol going away change nothing.
        "carol-rejected" => server.expect_users(&[("alice", true), ("bob", true)]),
        "bob-unlinked" => {
            server.expect(&[user_event("unlink", "bob")]);
            server.expect_users(&[("alice", true), ("bob", false)]);
        }
        // An existing user links again: no join.
        "bob-relinked" => {
            server.expect(&[user_event("link", "bob")]);
            server.expect_users(&[("alice", true), ("bob", true)]);
        }
        "bob-left" => {
            server.expect(&[user_event("unlink", "bob"), user_event("leave", "bob")]);
            server.expect_users(&[("alice", true)]);
        }
        // bob's socket closing while unlinked is silent; alice's closing while linked unlinks her.
        "disconnected" => {
            server.expect(&[user_event("unlink", "alice")]);
            server.expect_users(&[("alice", false)]);
        }
        other => panic!("unexpected step {other}"),
    });

    let news = r#"message {"type":"news","payload":{"headline":"krmx ❤ npm"}}"#;
    assert_log(&logs, "alice", &[
        "connecting",
        "connect",
        "state connected - []",
        "-- connected",
        "linking",
        "accept",
        "join alice",
        "link alice",
        "state linked alice [alice(linked)]",
        "-- alice-linked",
        "join bob",
        "link bob",
        "state linked alice [alice(linked), bob(linked)]",
        "-- bob-linked",
        "-- alice-sent",
        "-- bob-sent",
        "-- host-messages",
        news,
        r#"message {"type":"whisper","payload":"not for bob"}"#,
        "-- carol-rejected",
        "unlink bob",
        "state linked alice [alice(linked), bob(unlinked)]",
        "-- bob-unlinked",
        "link bob",
        "state linked alice [alice(linked), bob(linked)]",
        "-- bob-relinked",
        "unlink bob",
        "leave bob",
        "state linked alice [alice(linked)]",
        "-- bob-left",
        "closing",
        "close",
        "state closed - []",
        "-- disconnected",
    ]);
    // The client builds its table in the order of its messages: itself first (on `krmx/accepted`),
    // then every user the server lists, in join order.
    let bob_links = [
        "linking",
        "accept",
        "join alice",
        "link alice",
        "join bob",
        "link bob",
        "state linked bob [bob(linked), alice(linked)]",
    ];
    let bob_log: Vec<&str> = ["connecting", "connect", "state connected - []", "-- connected", "-- alice-linked"]
        .into_iter()
        .chain(bob_links)
        .chain(["-- bob-linked", "-- alice-sent", "-- bob-sent", "-- host-messages"])
        .chain([news, r#"message {"type":"direct","payload":{"n":[1,2,3]}}"#])
        .chain(["-- carol-rejected", "unlinking", "unlink bob", "state connected - []", "-- bob-unlinked"])
        .chain(bob_links)
        .chain(["-- bob-relinked"])
        // The server unlinks bob, then tells bob's connection (no longer linked) that bob left.
        .chain(["unlinking", "unlink bob", "leave bob", "state connected - []", "-- bob-left"])
        .chain(["closing", "close", "state closed - []", "-- disconnected"])
        .collect();
    assert_log(&logs, "bob", &bob_log);
    assert_log(&logs, "carol", &[
        "connecting",
        "connect",
        "state connected - []",
        "-- connected",
        "-- alice-linked",
        "-- bob-linked",
        "-- alice-sent",
        "-- bob-sent",
        "-- host-messages",
        "linking",
        "reject user alice is already linked to a connection",
        "rejected: user alice is already linked to a connection",
        "linking",
        "reject invalid username",
        "rejected: invalid username",
        "linking",
        "reject invalid username",
        "rejected: invalid username",
        "state connected - []",
        "closing",
        "close",
        "state closed - []",
        "-- carol-rejected",
        "-- bob-unlinked",
        "-- bob-relinked",
        "-- bob-left",
        "-- disconnected",
    ]);
    assert_eq!(logs.len(), 3, "unexpected clients: {:?}", logs.keys().collect::<Vec<_>>());

    server.close(&["alice"]);
}

#[test]
fn npm_client_links_through_host_authentication() {
    ensure_node_modules();
    let mut server = KrmxServer::start(&["--auth"]);
    let mut ids = Vec::new();
    let logs = run_scenario("auth", &mut server, |step, server| match step {
        "auth-without-token" => {
            ids.push(server.expect_authenticate("dave", true, None));
            server.command(json!({ "cmd": "reject", "id": ids.last(), "reason": "missing token" }));
        }
        // A rejection without a reason reaches the client as the protocol's default reason.
        "auth-wrong-token" => {
            ids.push(server.expect_authenticate("dave", true, Some("wrong-token")));
            server.command(json!({ "cmd": "reject", "id": ids.last() }));
        }
        "auth-good-token" => {
            ids.push(server.expect_authenticate("dave", true, Some("s3cret-token")));
            server.command(json!({ "cmd": "accept", "id": ids.last() }));
        }
        "dave-linked" => {
            server.expect(&[user_event("join", "dave"), user_event("link", "dave")]);
            server.expect_users(&[("dave", true)]);
        }
        "auth-existing-user" => {
            server.expect(&[user_event("unlink", "dave")]);
            ids.push(server.expect_authenticate("dave", false, Some("s3cret-token")));
            server.command(json!({ "cmd": "accept", "id": ids.last() }));
        }
        "dave-relinked" => server.expect(&[user_event("link", "dave")]),
        "disconnected" => server.expect(&[user_event("unlink", "dave")]),
        other => panic!("unexpected step {other}"),
    });
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "authentication request ids are not distinct: {ids:?}");

    assert_log(&logs, "dave", &[
        "connecting",
        "connect",
        "linking",
        "-- auth-without-token",
        "reject missing token",
        "rejected: missing token",
        "linking",
        "-- auth-wrong-token",
        "reject authentication failed",
        "rejected: authentication failed",
        "linking",
        "-- auth-good-token",
        "accept",
        "join dave",
        "link dave",
        "state linked dave [dave(linked)]",
        "-- dave-linked",
        "unlinking",
        "unlink dave",
        "linking",
        "-- auth-existing-user",
        "accept",
        "join dave",
        "link dave",
        "state linked dave [dave(linked)]",
        "-- dave-relinked",
        "closing",
        "close",
        "state closed - []",
        "-- disconnected",
    ]);
    assert_eq!(logs.len(), 1, "unexpected clients: {:?}", logs.keys().collect::<Vec<_>>());

    server.close(&["dave"]);
}
