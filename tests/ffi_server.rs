//! The C API as a host uses it, over real sockets on 127.0.0.1: every call goes through the
//! exported `krmx_server_*` functions, events are read from the `KrmxEvent` struct.

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::mpsc;
use std::time::Duration;

use common::ffi::events::render_server;
use common::ffi::server::{new_server, server_users, Poller};
use common::ffi::{c, last_error, text};
use common::{accepted, frame, joined, left, linked, rejected, unlinked, Client};
use krmx::ffi::event::{KrmxEvent, KrmxEventKind::*};
use krmx::ffi::result::{KrmxResult, KrmxResult::*};
use krmx::ffi::server::*;
use serde_json::json;

/// An owned server handle, freed on drop.
struct Server(*mut KrmxServer);

impl Drop for Server {
    fn drop(&mut self) {
        assert_eq!(unsafe { krmx_server_free(self.0) }, KRMX_OK);
    }
}

/// An event rendered as a line, to compare whole sequences at once. Unlike the shared rendering,
/// an authentication request shows its request id (these tests answer by id) and its auth as an
/// `Option`; no event at all is `none`.
fn render(event: &KrmxEvent) -> String {
    match event.kind {
        KRMX_EVENT_NONE => "none".into(),
        KRMX_EVENT_AUTHENTICATE => format!(
            "authenticate {} {} new={} auth={:?}",
            event.request_id,
            text(event.username, event.username_len).unwrap_or_default(),
            event.is_new_user,
            text(event.auth, event.auth_len)
        ),
        _ => render_server(event),
    }
}

impl Server {
    fn new(configure: impl FnOnce(&mut KrmxServerConfig)) -> Server {
        Server(new_server(configure))
    }

    /// Listens on a free port and returns it.
    fn listen(&self) -> u16 {
        assert_eq!(unsafe { krmx_server_listen(self.0, 0) }, KRMX_OK, "{}", last_error());
        let mut port = 0u16;
        assert_eq!(unsafe { krmx_server_port(self.0, &mut port) }, KRMX_OK);
        port
    }

    fn poll(&self, timeout_ms: i32) -> (KrmxResult, String) {
        let mut event = KrmxEvent::none();
        let result = unsafe { krmx_server_poll(self.0, &mut event, timeout_ms) };
        (result, render(&event))
    }

    fn users(&self) -> Vec<(String, bool)> {
        server_users(self.0)
    }

    fn status(&self) -> KrmxServerStatus {
        let mut status = KrmxServerStatus::KRMX_SERVER_STATUS_CLOSED;
        assert_eq!(unsafe { krmx_server_status(self.0, &mut status) }, KRMX_OK);
        status
    }
}

/// A host with a dedicated polling thread (as a dedicated game server has): it polls with a
/// timeout and hands every event, rendered, to the test thread, which calls the other functions.
struct Host {
    server: Server,
    events: mpsc::Receiver<String>,
    poller: Poller,
}

impl Host {
    fn start(configure: impl FnOnce(&mut KrmxServerConfig)) -> (Host, u16) {
        let server = Server::new(configure);
        let port = server.listen();
        let (poller, events) = Poller::start(server.0, render);
        let host = Host { server, events, poller };
        assert_eq!(host.next(), format!("listen {port}"));
        (host, port)
    }

    fn raw(&self) -> *mut KrmxServer {
        self.server.0
    }

    fn next(&self) -> String {
        self.events.recv_timeout(Duration::from_secs(5)).expect("expected an event within 5 s")
    }

    fn expect(&self, expected: &[&str]) {
        for want in expected {
            assert_eq!(self.next(), *want);
        }
    }

    fn expect_nothing(&self) {
        if let Ok(event) = self.events.recv_timeout(Duration::from_millis(100)) {
            panic!("unexpected event {event}");
        }
    }
}

impl Drop for Host {
    /// The poller stops before the server is freed (the fields drop after this).
    fn drop(&mut self) {
        self.poller.stop();
    }
}

fn url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}/")
}

fn linked_client(host: &Host, port: u16, username: &str) -> Client {
    let mut client = common::connect(&url(port)).labelled(username);
    client.link(username);
    host.expect(&[&format!("join {username}"), &format!("link {username}")]);
    client
}

#[test]
fn link_messages_users_send_broadcast_kick_and_close_through_the_c_api() {
    let (host, port) = Host::start(|_| {});
    assert_eq!(host.server.status(), KrmxServerStatus::KRMX_SERVER_STATUS_LISTENING);
    host.expect_nothing();

    let mut simon = linked_client(&host, port, "simon");
    let mut lisa = linked_client(&host, port, "lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);
    assert_eq!(host.server.users(), [("simon".to_string(), true), ("lisa".to_string(), true)]);

    simon.send_json(&json!({"type": "game/move", "payload": {"x": 1, "to": "b2"}}));
    simon.send_json(&json!({"type": "game/pass"}));
    host.expect(&[r#"message simon game/move {"x":1,"to":"b2"}"#, "message simon game/pass (none)"]);

    let (kind, payload) = (c("game/state"), c(r#"{"turn": 2}"#));
    assert_eq!(unsafe { krmx_server_send(host.raw(), c("lisa").as_ptr(), kind.as_ptr(), payload.as_ptr()) }, KRMX_OK);
    lisa.expect_frame(&frame("game/state", Some(json!({"turn": 2}))));
    assert_eq!(unsafe { krmx_server_broadcast(host.raw(), kind.as_ptr(), ptr::null(), c("lisa").as_ptr()) }, KRMX_OK);
    simon.expect_frame(&frame("game/state", None));
    assert_eq!(unsafe { krmx_server_broadcast(host.raw(), kind.as_ptr(), c("[1,2]").as_ptr(), ptr::null()) }, KRMX_OK);
    simon.expect_frame(&frame("game/state", Some(json!([1, 2]))));
    lisa.expect_frame(&frame("game/state", Some(json!([1, 2]))));

    let reserved = c("krmx/joined");
    assert_eq!(unsafe { krmx_server_broadcast(host.raw(), reserved.as_ptr(), ptr::null(), ptr::null()) }, KRMX_ERR_RESERVED_TYPE);
    assert!(last_error().contains("krmx/"), "{}", last_error());
    let bad_utf8 = [0xffu8, 0xfe, 0];
    assert_eq!(
        unsafe { krmx_server_send(host.raw(), bad_utf8.as_ptr().cast(), kind.as_ptr(), ptr::null()) },
        KRMX_ERR_INVALID_UTF8
    );

    assert_eq!(unsafe { krmx_server_unlink(host.raw(), c("lisa").as_ptr()) }, KRMX_OK);
    host.expect(&["unlink lisa"]);
    lisa.expect_frame(&unlinked("lisa"));
    simon.expect_frame(&unlinked("lisa"));
    assert_eq!(unsafe { krmx_server_send(host.raw(), c("lisa").as_ptr(), kind.as_ptr(), ptr::null()) }, KRMX_ERR_USER_NOT_LINKED);
    assert_eq!(unsafe { krmx_server_kick(host.raw(), c("lisa").as_ptr()) }, KRMX_OK);
    host.expect(&["leave lisa"]);
    simon.expect_frame(&left("lisa"));
    assert_eq!(host.server.users(), [("simon".to_string(), true)]);

    // Polled on this thread from here: a polling thread could finish the close before the test
    // sees the server closing.
    let mut host = host;
    host.poller.stop();
    assert_eq!(unsafe { krmx_server_close(host.raw()) }, KRMX_OK);
    assert_eq!(host.server.status(), KrmxServerStatus::KRMX_SERVER_STATUS_CLOSING);
    for expected in ["unlink simon", "leave simon", "close"] {
        assert_eq!(host.server.poll(5_000), (KRMX_OK, expected.to_string()));
    }
    simon.expect_frames(&[unlinked("simon"), left("simon")]);
    simon.expect_closed();
    assert_eq!(host.server.status(), KrmxServerStatus::KRMX_SERVER_STATUS_CLOSED);
    assert_eq!(unsafe { krmx_server_close(host.raw()) }, KRMX_ERR_WRONG_STATUS);
    drop(lisa);
}

#[test]
fn authentication_is_decided_by_the_host_with_a_timeout() {
    let (host, port) = Host::start(|config| {
        config.authenticate = true;
        config.auth_timeout_ms = 300;
    });
    let mut client = common::connect(&url(port));
    client.send_text(&common::link_message("simon", "0.5.4", Some("token-1")));
    host.expect(&[r#"authenticate 1 simon new=true auth=Some("token-1")"#]);
    let reason = c("server is full");
    assert_eq!(unsafe { krmx_server_authenticate(host.raw(), 1, false, reason.as_ptr()) }, KRMX_OK);
    client.expect_frame(&rejected("server is full"));
    assert_eq!(unsafe { krmx_server_authenticate(host.raw(), 1, true, ptr::null()) }, KRMX_ERR_UNKNOWN_REQUEST);

    client.send_text(&common::link_message("simon", "0.5.4", None));
    host.expect(&["authenticate 2 simon new=true auth=None"]);
    assert_eq!(unsafe { krmx_server_authenticate(host.raw(), 2, false, ptr::null()) }, KRMX_OK);
    client.expect_frame(&rejected("authentication failed"));

    // The host does not answer: the link is rejected after the timeout, while polling.
    client.send_text(&common::link_message("simon", "0.5.4", None));
    host.expect(&["authenticate 3 simon new=true auth=None"]);
    client.expect_frame(&rejected("authentication timeout"));

    client.send_text(&common::link_message("simon", "0.5.4", None));
    host.expect(&["authenticate 4 simon new=true auth=None"]);
    assert_eq!(unsafe { krmx_server_authenticate(host.raw(), 4, true, ptr::null()) }, KRMX_OK);
    client.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    host.expect(&["join simon", "link simon"]);
}

unsafe extern "C" fn only_bots(user_data: *mut c_void, username: *const c_char) -> bool {
    let calls = &mut *(user_data as *mut u32);
    *calls += 1;
    CStr::from_ptr(username).to_bytes().starts_with(b"bot-")
}

#[test]
fn config_username_rule_path_query_and_no_new_users() {
    let mut calls: u32 = 0;
    let path = c("/game");
    let (name, value, debug) = (c("room"), c("blue team"), c("debug"));
    let query = [
        KrmxQueryRequirement { name: name.as_ptr(), kind: KrmxQueryKind::KRMX_QUERY_EQUALS as i32, value: value.as_ptr() },
        KrmxQueryRequirement { name: debug.as_ptr(), kind: KrmxQueryKind::KRMX_QUERY_ABSENT as i32, value: ptr::null() },
    ];
    let (host, port) = Host::start(|config| {
        config.path = path.as_ptr();
        config.query = query.as_ptr();
        config.query_len = query.len();
        config.username_rule = Some(only_bots);
        config.username_rule_data = (&mut calls as *mut u32).cast();
        config.accept_new_users = false;
    });
    assert_eq!(common::handshake_status(&format!("ws://127.0.0.1:{port}/other?room=blue%20team")), 404);
    assert_eq!(common::handshake_status(&format!("ws://127.0.0.1:{port}/game?room=red")), 400);
    assert_eq!(common::handshake_status(&format!("ws://127.0.0.1:{port}/game?room=blue+team&debug=1")), 400);
    let mut client = common::connect(&format!("ws://127.0.0.1:{port}/game?room=blue+team"));

    client.send_text(&common::link_message("simon", "0.5.4", None));
    client.expect_frame(&rejected("invalid username"));
    client.send_text(&common::link_message("bot-1", "0.5.4", None));
    client.expect_frame(&rejected("server is not accepting new users"));
    assert_eq!(unsafe { krmx_server_join(host.raw(), c("simon").as_ptr()) }, KRMX_ERR_INVALID_USERNAME);
    assert_eq!(unsafe { krmx_server_join(host.raw(), c("bot-1").as_ptr()) }, KRMX_OK);
    host.expect(&["join bot-1"]);
    client.send_text(&common::link_message("bot-1", "0.5.4", None));
    client.expect_frames(&[accepted(), joined("bot-1"), linked("bot-1")]);
    host.expect(&["link bot-1"]);
    assert_eq!(calls, 5, "the rule is asked once per link request (3) and join (2)");
}

#[test]
fn wake_and_actions_from_another_thread_end_a_blocking_poll() {
    let server = Server::new(|_| {});
    let port = server.listen();
    assert_eq!(server.poll(0), (KRMX_OK, format!("listen {port}")));
    let mut simon = common::connect(&url(port));
    simon.send_link("simon");
    assert_eq!(server.poll(5_000), (KRMX_OK, "join simon".to_string()));
    assert_eq!(server.poll(5_000), (KRMX_OK, "link simon".to_string()));
    let handle = server.0 as usize;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(unsafe { krmx_server_wake(handle as *mut KrmxServer) }, KRMX_OK);
        });
        assert_eq!(server.poll(-1), (KRMX_NO_EVENT, "none".to_string()));
    });
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let name = c("simon");
            assert_eq!(unsafe { krmx_server_kick(handle as *mut KrmxServer, name.as_ptr()) }, KRMX_OK);
        });
        assert_eq!(server.poll(-1), (KRMX_OK, "unlink simon".to_string()));
    });
    assert_eq!(server.poll(0), (KRMX_OK, "leave simon".to_string()));
    simon.expect_frames(&[accepted(), joined("simon"), linked("simon"), unlinked("simon"), left("simon")]);
}

#[test]
fn a_taken_port_is_an_io_error_at_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = Server::new(|_| {});
    assert_eq!(unsafe { krmx_server_listen(server.0, port) }, KRMX_ERR_IO);
    assert!(last_error().contains(&format!("127.0.0.1:{port}")), "{}", last_error());
    assert_eq!(server.status(), KrmxServerStatus::KRMX_SERVER_STATUS_INITIALIZING);
    assert!(server.listen() > 0);
}

#[test]
fn null_and_foreign_handles_are_refused() {
    let mut event = KrmxEvent::none();
    let mut fake = [0u64; 64];
    let fake = fake.as_mut_ptr().cast::<KrmxServer>();
    unsafe {
        assert_eq!(krmx_server_poll(ptr::null_mut(), &mut event, 0), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_server_poll(fake, &mut event, 0), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_server_free(fake), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_server_free(ptr::null_mut()), KRMX_OK);
    }
}

/// The states (hex, as in /proc/net/tcp: 01 is ESTABLISHED) of this process's TCP sockets whose
/// local port is `port`.
fn tcp_states_on(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port).then(|| fields[3].to_string())
        })
        .collect()
}

/// A peer that stopped reading must not hold a free up for long, nor keep its socket open after
/// the free returns: the connection gets a short grace for its last words, then its socket goes.
#[test]
fn a_free_closes_the_socket_of_a_peer_that_does_not_read() {
    let (host, port) = Host::start(|config| config.max_queued_bytes = 64 << 20);
    let slow = linked_client(&host, port, "slow");
    let payload = c(&format!("\"{}\"", "x".repeat(1 << 20)));
    for _ in 0..32 {
        let sent = unsafe { krmx_server_send(host.raw(), c("slow").as_ptr(), c("test/big").as_ptr(), payload.as_ptr()) };
        assert_eq!(sent, KRMX_OK, "{}", last_error());
    }
    // 32 MB queued for a peer that reads nothing: the server's writer is stuck on a full socket.
    assert!(tcp_states_on(port).contains(&"01".to_string()), "the server's side is established: {:?}", tcp_states_on(port));
    let started = std::time::Instant::now();
    drop(host);
    println!("freed in {:?}", started.elapsed());
    let states = tcp_states_on(port);
    assert!(!states.contains(&"01".to_string()) && !states.contains(&"0A".to_string()), "after the free, nothing is established or listening on the port: {states:?}");
    drop(slow);
}

/// The server a re-entering username rule calls, and what its call returned.
static RULE_SERVER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static RULE_SAW: std::sync::Mutex<Vec<(KrmxResult, String)>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn calls_back(_: *mut c_void, _: *const c_char) -> bool {
    let server = RULE_SERVER.load(std::sync::atomic::Ordering::SeqCst) as *mut KrmxServer;
    let mut count = 0usize;
    let result = krmx_server_user_count(server, &mut count);
    RULE_SAW.lock().unwrap().push((result, last_error()));
    true
}

/// The header forbids a username rule to call back into a server; one that does gets an error
/// code instead of waiting forever for the server it is called from.
#[test]
fn a_username_rule_that_calls_back_into_its_server_gets_an_error_not_a_deadlock() {
    let server = Server::new(|config| config.username_rule = Some(calls_back));
    RULE_SERVER.store(server.0 as usize, std::sync::atomic::Ordering::SeqCst);
    server.listen();
    assert_eq!(unsafe { krmx_server_join(server.0, c("simon").as_ptr()) }, KRMX_OK, "{}", last_error());
    let expected = (
        KRMX_ERR_WRONG_STATUS,
        "krmx_server_user_count: a server must not be called from inside its username rule".to_string(),
    );
    assert_eq!(*RULE_SAW.lock().unwrap(), [expected]);
    // Outside the rule, calls work again.
    assert_eq!(server.users(), common::ffi::users(&[("simon", false)]));
}
