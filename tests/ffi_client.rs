//! Our client against our server over real sockets on 127.0.0.1, both driven only through the
//! exported C functions (`krmx_client_*`, `krmx_send`, `krmx_server_*`), as a C host drives them.
//! Every polled event is rendered to a line ("join alice", "reject invalid username", ...) and
//! whole sequences are compared. Polls are bounded by a timeout (a hang guard, never a duration
//! assertion).
//!
//! The reconnect tests put a small TCP proxy (std threads) between client and server, to sever
//! connections or to stop forwarding while keeping the sockets open (a pulled cable).

mod common;

use std::ffi::c_char;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::ffi::client::{default_client_config, reconnecting, Client};
use common::ffi::events::{render_client, render_server};
use common::ffi::server::{new_server, server_users, Poller};
use common::ffi::{c, last_error, result_name, text, users};
use common::{closed_port, TIMEOUT};
use krmx::ffi::client::*;
use krmx::ffi::event::{KrmxEvent, KrmxEventKind::*};
use krmx::ffi::result::KrmxResult::*;
use krmx::ffi::server::*;

use KrmxClientStatus::*;

/// The thread-count test must not see the threads of the other tests (servers' pollers,
/// proxies): it runs alone, every other test shares.
static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner())
}

fn url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}")
}


fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).expect("a Threads: line");
    line["Threads:".len()..].trim().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The server, driven through krmx_server_*: a host thread polls and hands events to the test.
// ---------------------------------------------------------------------------------------------

/// A listening server whose events a dedicated thread polls (as a game server's loop would).
struct Host {
    raw: *mut KrmxServer,
    port: u16,
    events: mpsc::Receiver<(String, u64)>,
    seen: Vec<String>,
    poller: Poller,
}

impl Host {
    fn start(configure: impl FnOnce(&mut KrmxServerConfig)) -> Host {
        Host::start_on(0, configure)
    }

    /// Listens on `port` (0: a free one). A given port may still be held for a moment by the
    /// server that had it, so binding is retried for a while.
    fn start_on(port: u16, configure: impl FnOnce(&mut KrmxServerConfig)) -> Host {
        let raw = new_server(configure);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match unsafe { krmx_server_listen(raw, port) } {
                KRMX_OK => break,
                KRMX_ERR_IO if port != 0 && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                other => panic!("listen on {port}: {other:?} {}", last_error()),
            }
        }
        let mut actual = 0u16;
        assert_eq!(unsafe { krmx_server_port(raw, &mut actual) }, KRMX_OK);
        assert!(port == 0 || actual == port);
        let (poller, events) = Poller::start(raw, |event| (render_server(event), event.request_id));
        let mut host = Host { raw, port: actual, events, seen: Vec::new(), poller };
        host.expect(&[&format!("listen {actual}")]);
        host
    }

    fn url(&self) -> String {
        url(self.port)
    }

    fn next(&mut self, timeout: Duration) -> Option<(String, u64)> {
        let event = self.events.recv_timeout(timeout).ok()?;
        self.seen.push(event.0.clone());
        Some(event)
    }

    /// The next events must be exactly `expected`.
    fn expect(&mut self, expected: &[&str]) {
        let mut got = Vec::new();
        for _ in expected {
            match self.next(TIMEOUT) {
                Some((line, _)) => got.push(line),
                None => break,
            }
        }
        assert_eq!(got, expected, "server events (everything the server saw: {:?})", self.seen);
    }

    /// The next event must be `authenticate {expected}`; returns its request id.
    fn expect_authenticate(&mut self, expected: &str) -> u64 {
        let (line, id) = self.next(TIMEOUT).unwrap_or_else(|| panic!("no authenticate; server saw {:?}", self.seen));
        assert_eq!(line, format!("authenticate {expected}"), "server saw {:?}", self.seen);
        id
    }

    fn expect_nothing(&mut self, ms: u64) {
        if let Some((line, _)) = self.next(Duration::from_millis(ms)) {
            panic!("unexpected server event {line:?} (server saw {:?})", self.seen);
        }
    }

    fn authenticate(&self, request_id: u64, accept: bool, reason: Option<&str>) {
        let reason = reason.map(c);
        let reason_ptr = reason.as_ref().map_or(ptr::null(), |r| r.as_ptr());
        let result = unsafe { krmx_server_authenticate(self.raw, request_id, accept, reason_ptr) };
        assert_eq!(result, KRMX_OK, "{}", last_error());
    }

    fn send(&self, username: &str, kind: &str, payload: Option<&str>) {
        let payload = payload.map(c);
        let payload_ptr = payload.as_ref().map_or(ptr::null(), |p| p.as_ptr());
        let result = unsafe { krmx_server_send(self.raw, c(username).as_ptr(), c(kind).as_ptr(), payload_ptr) };
        assert_eq!(result, KRMX_OK, "{}", last_error());
    }

    fn broadcast(&self, kind: &str, payload: Option<&str>, skip: Option<&str>) {
        let (payload, skip) = (payload.map(c), skip.map(c));
        let payload_ptr = payload.as_ref().map_or(ptr::null(), |p| p.as_ptr());
        let skip_ptr = skip.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        let result = unsafe { krmx_server_broadcast(self.raw, c(kind).as_ptr(), payload_ptr, skip_ptr) };
        assert_eq!(result, KRMX_OK, "{}", last_error());
    }

    fn users(&self) -> Vec<(String, bool)> {
        server_users(self.raw)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.poller.stop();
        let result = unsafe { krmx_server_free(self.raw) };
        if !std::thread::panicking() {
            assert_eq!(result, KRMX_OK);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy between client and server: sever its connections, or stop forwarding.
// ---------------------------------------------------------------------------------------------

struct Pair {
    sockets: [TcpStream; 2],
    blackholed: Arc<AtomicBool>,
}

#[derive(Default)]
struct ProxyShared {
    stop: AtomicBool,
    pairs: Mutex<Vec<Pair>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// Forwards every connection to its port to the upstream port, until severed; keeps accepting.
struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, blackholed: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if blackholed.load(Ordering::SeqCst) {
                continue; // a pulled cable: the bytes go nowhere
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        // A proxy passes an end on; a pulled cable passes nothing on.
        if !blackholed.load(Ordering::SeqCst) {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    })
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(ProxyShared::default());
        let inner = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for downstream in listener.incoming() {
                if inner.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(downstream) = downstream else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let _ = downstream.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let blackholed = Arc::new(AtomicBool::new(false));
                let clones = (
                    downstream.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                    downstream.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                );
                // Registered before any byte is forwarded, so a sever after the handshake finds it.
                inner.pairs.lock().unwrap().push(Pair { sockets: [downstream, upstream], blackholed: blackholed.clone() });
                let mut pumps = inner.pumps.lock().unwrap();
                pumps.push(pump(clones.0, clones.1, blackholed.clone()));
                pumps.push(pump(clones.3, clones.2, blackholed));
            }
        });
        Proxy { port, shared, acceptor: Some(acceptor) }
    }

    fn url(&self) -> String {
        url(self.port)
    }

    /// Shuts down both sockets of every connection: both ends see the connection end.
    fn sever(&self) {
        for pair in self.shared.pairs.lock().unwrap().drain(..) {
            for socket in &pair.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Stops forwarding on every current connection, keeping its sockets open. New connections
    /// are forwarded as usual.
    fn blackhole(&self) {
        for pair in self.shared.pairs.lock().unwrap().iter() {
            pair.blackholed.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the acceptor
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.sever();
        let pumps: Vec<_> = self.shared.pumps.lock().unwrap().drain(..).collect();
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

/// Runs `poll` (which blocks) and aborts the process if it has not returned within 20 s, so a
/// broken wake fails the run instead of hanging it.
fn guarded<T>(what: &str, poll: impl FnOnce() -> T) -> T {
    let (done, watch) = mpsc::channel::<()>();
    let what = what.to_string();
    let guard = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(Duration::from_secs(20)) {
            eprintln!("{what}: a blocking poll did not return within 20 s; aborting");
            std::process::abort();
        }
    });
    let result = poll();
    drop(done);
    guard.join().unwrap();
    result
}

// =============================================================================================
// 1. Connect, link, and the user table.
// =============================================================================================

#[test]
fn connect_and_link_build_the_user_table_in_join_order() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let mut alice = Client::new("alice", |_| {});
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_INITIALIZING);
    assert_eq!(alice.users(), []);
    alice.connect(&host.url());
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTING);
    alice.expect(&["connect"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.username(), None);
    assert_eq!(alice.users(), []);

    alice.link("alice", None);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKING);
    assert_eq!(alice.username().as_deref(), Some("alice"));
    alice.expect(&["accept", "join alice", "link alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(alice.username().as_deref(), Some("alice"));
    assert_eq!(alice.users(), users(&[("alice", true)]));
    host.expect(&["join alice", "link alice"]);

    // The username buffer: too small still tells the length; a NULL length is fine.
    let mut small = [0 as c_char; 5];
    let mut len = 0usize;
    assert_eq!(unsafe { krmx_client_username(alice.raw, small.as_mut_ptr(), small.len(), &mut len) }, KRMX_ERR_BUFFER_TOO_SMALL);
    assert_eq!(len, 5);
    let mut exact = [0 as c_char; 6];
    assert_eq!(unsafe { krmx_client_username(alice.raw, exact.as_mut_ptr(), exact.len(), ptr::null_mut()) }, KRMX_OK);
    assert_eq!(text(exact.as_ptr(), 5).as_deref(), Some("alice"));
    let mut len = 0usize;
    assert_eq!(unsafe { krmx_client_user(alice.raw, 0, small.as_mut_ptr(), small.len(), &mut len, ptr::null_mut()) }, KRMX_ERR_BUFFER_TOO_SMALL);
    assert_eq!(len, 5);

    // A user the server made (never linked) is in the tables too, unlinked.
    assert_eq!(unsafe { krmx_server_join(host.raw, c("carol").as_ptr()) }, KRMX_OK);
    host.expect(&["join carol"]);
    alice.expect(&["join carol"]);
    assert_eq!(alice.users(), users(&[("alice", true), ("carol", false)]));

    let mut bob = Client::new("bob", |_| {});
    bob.connect_and_link(&host.url(), "bob", &[("alice", true), ("carol", false)]);
    host.expect(&["join bob", "link bob"]);
    alice.expect(&["join bob", "link bob"]);
    let table = users(&[("alice", true), ("carol", false), ("bob", true)]);
    assert_eq!(alice.users(), table);
    assert_eq!(bob.users(), table);
    assert_eq!(host.users(), table);
    assert_eq!(bob.username().as_deref(), Some("bob"));
    assert_eq!(alice.username().as_deref(), Some("alice"));
    alice.expect_nothing(50);
    bob.expect_nothing(0);
}

// =============================================================================================
// 2. Messages both ways.
// =============================================================================================

#[test]
fn messages_from_client_to_server_and_from_server_to_clients() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let mut alice = Client::new("alice", |_| {});
    alice.connect_and_link(&host.url(), "alice", &[]);
    let mut bob = Client::new("bob", |_| {});
    bob.connect_and_link(&host.url(), "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);
    host.expect(&["join alice", "link alice", "join bob", "link bob"]);

    assert_eq!(alice.send("chat/say", Some(r#"{ "text": "hi \"there\"", "n": [1, 2.5, null] }"#)), KRMX_OK);
    assert_eq!(alice.send("chat/ping", None), KRMX_OK);
    host.expect(&[
        r#"message alice chat/say {"text":"hi \"there\"","n":[1,2.5,null]}"#,
        "message alice chat/ping (none)",
    ]);
    // (Messages of two connections have no order between them: one sender at a time.)
    assert_eq!(bob.send("chat/say", Some(r#""héllo""#)), KRMX_OK);
    assert_eq!(bob.send("x", Some("null")), KRMX_OK);
    host.expect(&[r#"message bob chat/say "héllo""#, "message bob x null"]);

    host.send("alice", "game/state", Some(r#"{"turn": 2, "board": [[1, 0], [0, 1]]}"#));
    host.send("alice", "game/ping", None);
    alice.expect(&[r#"message game/state {"turn":2,"board":[[1,0],[0,1]]}"#, "message game/ping (none)"]);

    // A broadcast that skips alice reaches only bob; the next one reaches both.
    host.broadcast("game/turn", Some(r#""bob""#), Some("alice"));
    host.broadcast("game/tick", None, None);
    host.broadcast("game/score", Some("[3, 4]"), None);
    bob.expect(&[r#"message game/turn "bob""#, "message game/tick (none)", "message game/score [3,4]"]);
    alice.expect(&["message game/tick (none)", "message game/score [3,4]"]);
    alice.expect_nothing(50);
    bob.expect_nothing(0);
    host.expect_nothing(0);
}

// =============================================================================================
// 3. Refusals: exact result codes, nothing sent.
// =============================================================================================

#[test]
fn refusals_have_exact_result_codes_and_send_nothing() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let mut alice = Client::new("alice", |_| {});

    // Before connecting.
    assert_eq!(alice.send("chat/say", None), KRMX_ERR_WRONG_STATUS);
    assert!(!last_error().is_empty());
    assert!(last_error().starts_with("krmx_send"), "{}", last_error());
    assert_eq!(unsafe { krmx_client_link(alice.raw, c("alice").as_ptr(), ptr::null()) }, KRMX_ERR_WRONG_STATUS);
    assert_eq!(unsafe { krmx_client_unlink(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    assert_eq!(unsafe { krmx_client_leave(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    for bad in ["http://x", "wss://x", "not a url", "", "ws://"] {
        assert_eq!(unsafe { krmx_client_connect(alice.raw, c(bad).as_ptr()) }, KRMX_ERR_INVALID_ARGUMENT, "url {bad:?}");
        assert!(!last_error().is_empty());
    }
    let bad_utf8 = [b'w', b's', b':', b'/', b'/', 0xff, 0xfe, 0];
    assert_eq!(unsafe { krmx_client_connect(alice.raw, bad_utf8.as_ptr().cast()) }, KRMX_ERR_INVALID_UTF8);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_INITIALIZING);
    alice.expect_nothing(0);

    alice.connect(&host.url());
    assert_eq!(unsafe { krmx_client_connect(alice.raw, c(&host.url()).as_ptr()) }, KRMX_ERR_WRONG_STATUS);
    alice.expect(&["connect"]);
    assert_eq!(unsafe { krmx_client_connect(alice.raw, c(&host.url()).as_ptr()) }, KRMX_ERR_WRONG_STATUS);
    // Connected but not linked.
    assert_eq!(alice.send("chat/say", Some("1")), KRMX_ERR_WRONG_STATUS);
    assert!(last_error().contains("connected"), "{}", last_error());
    assert_eq!(unsafe { krmx_client_unlink(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    assert_eq!(unsafe { krmx_client_leave(alice.raw) }, KRMX_ERR_WRONG_STATUS);

    alice.link("alice", None);
    assert_eq!(unsafe { krmx_client_link(alice.raw, c("alice").as_ptr(), ptr::null()) }, KRMX_ERR_WRONG_STATUS);
    assert_eq!(alice.send("chat/say", Some("1")), KRMX_ERR_WRONG_STATUS, "linking is not linked");
    alice.expect(&["accept", "join alice", "link alice"]);
    assert_eq!(unsafe { krmx_client_link(alice.raw, c("bob").as_ptr(), ptr::null()) }, KRMX_ERR_WRONG_STATUS);
    host.expect(&["join alice", "link alice"]);

    // Linked: the message itself is refused.
    assert_eq!(alice.send("krmx/x", None), KRMX_ERR_RESERVED_TYPE);
    assert!(last_error().contains("krmx/"), "{}", last_error());
    assert_eq!(alice.send("krmx/link", Some(r#"{"username":"bob","version":"0.5.5"}"#)), KRMX_ERR_RESERVED_TYPE);
    for bad in ["{bad", "", "1 2", "{\"a\":}", "undefined", "'x'"] {
        assert_eq!(alice.send("chat/say", Some(bad)), KRMX_ERR_INVALID_JSON, "payload {bad:?}");
        assert!(!last_error().is_empty());
    }
    let bad_utf8 = [0xffu8, 0];
    assert_eq!(unsafe { krmx_send(alice.raw, bad_utf8.as_ptr().cast(), ptr::null()) }, KRMX_ERR_INVALID_UTF8);
    assert_eq!(unsafe { krmx_send(alice.raw, c("chat/say").as_ptr(), bad_utf8.as_ptr().cast()) }, KRMX_ERR_INVALID_UTF8);

    // NULL arguments.
    let mut event = KrmxEvent::none();
    let mut status = KRMX_CLIENT_STATUS_CLOSED;
    let mut count = 0usize;
    let mut buffer = [0 as c_char; 33];
    let null_client: *mut KrmxClient = ptr::null_mut();
    unsafe {
        assert_eq!(krmx_send(alice.raw, ptr::null(), ptr::null()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_send(null_client, c("chat/say").as_ptr(), ptr::null()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_link(alice.raw, ptr::null(), ptr::null()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_connect(alice.raw, ptr::null()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_connect(null_client, c(&host.url()).as_ptr()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_poll(alice.raw, ptr::null_mut(), 0), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_poll(null_client, &mut event, 0), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_status(alice.raw, ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_status(null_client, &mut status), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_user_count(alice.raw, ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_user_count(null_client, &mut count), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_user(alice.raw, 0, ptr::null_mut(), 33, ptr::null_mut(), ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_user(null_client, 0, buffer.as_mut_ptr(), 33, ptr::null_mut(), ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_username(alice.raw, ptr::null_mut(), 33, ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_username(null_client, buffer.as_mut_ptr(), 33, ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_unlink(null_client), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_leave(null_client), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_wake(null_client), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_disconnect(null_client), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_config_default(ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert_eq!(krmx_client_new(ptr::null(), ptr::null_mut()), KRMX_ERR_NULL_ARGUMENT);
        assert!(last_error().contains("out"), "{}", last_error());
        assert_eq!(krmx_client_free(ptr::null_mut()), KRMX_OK);
    }
    assert_eq!(result_name(KRMX_ERR_NULL_ARGUMENT), "KRMX_ERR_NULL_ARGUMENT");
    assert_eq!(result_name(KRMX_ERR_INVALID_HANDLE), "KRMX_ERR_INVALID_HANDLE");

    // A handle of the other kind.
    let server_as_client = host.raw.cast::<KrmxClient>();
    let client_as_server = alice.raw.cast::<KrmxServer>();
    unsafe {
        assert_eq!(krmx_client_poll(server_as_client, &mut event, 0), KRMX_ERR_INVALID_HANDLE);
        assert!(last_error().contains("client"), "{}", last_error());
        assert_eq!(krmx_client_status(server_as_client, &mut status), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_client_link(server_as_client, c("eve").as_ptr(), ptr::null()), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_send(server_as_client, c("chat/say").as_ptr(), ptr::null()), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_client_wake(server_as_client), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_client_disconnect(server_as_client), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_client_free(server_as_client), KRMX_ERR_INVALID_HANDLE);
        let mut server_status = KrmxServerStatus::KRMX_SERVER_STATUS_CLOSED;
        assert_eq!(krmx_server_status(client_as_server, &mut server_status), KRMX_ERR_INVALID_HANDLE);
        assert_eq!(krmx_server_free(client_as_server), KRMX_ERR_INVALID_HANDLE);
    }

    // Invalid configs.
    let mut out = ptr::null_mut();
    let mut config = default_client_config();
    config.reconnect = true;
    config.reconnect_min_delay_ms = 500;
    config.reconnect_max_delay_ms = 100;
    assert_eq!(unsafe { krmx_client_new(&config, &mut out) }, KRMX_ERR_INVALID_ARGUMENT);
    assert!(out.is_null());
    let empty = c("");
    let mut config = default_client_config();
    config.protocol_version = empty.as_ptr();
    assert_eq!(unsafe { krmx_client_new(&config, &mut out) }, KRMX_ERR_INVALID_ARGUMENT);
    let mut config = default_client_config();
    config.max_message_bytes = 0;
    assert_eq!(unsafe { krmx_client_new(&config, &mut out) }, KRMX_ERR_INVALID_ARGUMENT);
    assert!(out.is_null());
    // NULL config: the defaults.
    assert_eq!(unsafe { krmx_client_new(ptr::null(), &mut out) }, KRMX_OK);
    assert_eq!(unsafe { krmx_client_free(out) }, KRMX_OK);
    // A freed handle is refused, never read: freeing twice or polling it is an error code.
    assert_eq!(unsafe { krmx_client_free(out) }, KRMX_ERR_INVALID_HANDLE);
    let mut event = KrmxEvent::none();
    assert_eq!(unsafe { krmx_client_poll(out, &mut event, 0) }, KRMX_ERR_INVALID_HANDLE);

    // None of the refused calls reached the server, and the client is still fine.
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(alice.send("chat/ok", Some("true")), KRMX_OK);
    host.expect(&["message alice chat/ok true"]);
    host.expect_nothing(50);
    alice.expect_nothing(0);
}

#[test]
fn config_defaults_are_as_documented() {
    let _shared = shared();
    let config = default_client_config();
    assert!(config.protocol_version.is_null());
    assert!(!config.reconnect);
    assert_eq!(config.reconnect_min_delay_ms, 250);
    assert_eq!(config.reconnect_max_delay_ms, 10_000);
    assert_eq!(config.reconnect_max_attempts, 0);
    assert_eq!(config.liveness_timeout_ms, 10_000);
    assert_eq!(config.connect_timeout_ms, 10_000);
    assert_eq!(config.max_message_bytes, 1_048_576);
    assert_eq!(config.max_queued_bytes, 1_048_576);
    assert_eq!(config.event_queue_bytes, 16_777_216);
}

// =============================================================================================
// 4. Rejections with the server's exact reasons.
// =============================================================================================

#[test]
fn rejections_carry_the_servers_exact_reason_and_the_client_may_link_again() {
    let _shared = shared();
    let mut host = Host::start(|config| {
        config.authenticate = true;
        config.accept_new_users = false;
    });
    for name in ["alice", "bob"] {
        assert_eq!(unsafe { krmx_server_join(host.raw, c(name).as_ptr()) }, KRMX_OK);
    }
    host.expect(&["join alice", "join bob"]);

    let after_reject = |client: &Client| {
        assert_eq!(client.status(), KRMX_CLIENT_STATUS_CONNECTED);
        assert_eq!(client.users(), []);
        assert_eq!(client.username(), None);
    };

    // Version mismatch (the client's config).
    let old = c("0.4.0");
    let mut veteran = Client::new("veteran", |config| config.protocol_version = old.as_ptr());
    drop(old); // copied by krmx_client_new
    veteran.connect(&host.url());
    veteran.expect(&["connect"]);
    veteran.link("alice", Some("token"));
    veteran.expect(&["reject krmx server version mismatch (server=0.5.*,client=0.4.0)"]);
    after_reject(&veteran);

    let mut eve = Client::new("eve", |_| {});
    eve.connect(&host.url());
    eve.expect(&["connect"]);
    // Invalid username.
    eve.link("1eve", None);
    eve.expect(&["reject invalid username"]);
    after_reject(&eve);
    eve.link("e", None);
    eve.expect(&["reject invalid username"]);
    // Not accepting new users (checked before authentication: no AUTHENTICATE).
    eve.link("eve", Some("token"));
    eve.expect(&["reject server is not accepting new users"]);
    after_reject(&eve);

    // Authentication: the auth string arrives exactly; the host's reason comes back exactly.
    let auth = "tök\"en\" with spaces {1}";
    eve.link("alice", Some(auth));
    let request = host.expect_authenticate(&format!("alice new=false auth={auth}"));
    host.authenticate(request, false, Some("the token expired, log in again"));
    eve.expect(&["reject the token expired, log in again"]);
    after_reject(&eve);
    eve.link("alice", None);
    let request = host.expect_authenticate("alice new=false auth=(none)");
    host.authenticate(request, false, None);
    eve.expect(&["reject authentication failed"]);
    after_reject(&eve);
    eve.link("alice", Some(auth));
    let request = host.expect_authenticate(&format!("alice new=false auth={auth}"));
    host.authenticate(request, true, None);
    eve.expect(&["accept", "join alice", "link alice", "join bob"]);
    assert_eq!(eve.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(eve.users(), users(&[("alice", true), ("bob", false)]));
    host.expect(&["link alice"]);

    // Already linked (before authentication too); also for a client with reconnect on, whose
    // first link is not a re-link to retry.
    veteran.expect_nothing(0);
    let mut mallory = Client::new("mallory", reconnecting);
    mallory.connect(&host.url());
    mallory.expect(&["connect"]);
    mallory.link("alice", Some("token"));
    mallory.expect(&["reject user alice is already linked to a connection"]);
    after_reject(&mallory);
    // ... and it may link again: as bob.
    mallory.link("bob", Some("bob's token"));
    let request = host.expect_authenticate("bob new=false auth=bob's token");
    host.authenticate(request, true, None);
    mallory.expect(&["accept", "join alice", "link alice", "join bob", "link bob"]);
    host.expect(&["link bob"]);
    eve.expect(&["link bob"]);
    host.expect_nothing(50);
    mallory.expect_nothing(0);
}

// =============================================================================================
// 5. Unlink, leave, kick, server unlink, disconnect, and connecting again.
// =============================================================================================

#[test]
fn unlink_leave_kick_server_unlink_disconnect_and_connect_again() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let mut alice = Client::new("alice", |_| {});
    alice.connect_and_link(&host.url(), "alice", &[]);
    let mut bob = Client::new("bob", |_| {});
    bob.connect_and_link(&host.url(), "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);
    host.expect(&["join alice", "link alice", "join bob", "link bob"]);

    // Unlink.
    assert_eq!(unsafe { krmx_client_unlink(alice.raw) }, KRMX_OK);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_UNLINKING);
    assert_eq!(alice.send("chat/say", None), KRMX_ERR_WRONG_STATUS);
    alice.expect(&["unlink alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    assert_eq!(alice.username(), None);
    bob.expect(&["unlink alice"]);
    assert_eq!(bob.users(), users(&[("alice", false), ("bob", true)]));
    host.expect(&["unlink alice"]);

    // Link again (a known user: no join), then leave.
    alice.link("alice", None);
    alice.expect_accept("alice", &[]);
    // alice is first in join order: the table is alice, bob.
    alice.expect(&["join bob", "link bob"]);
    assert_eq!(alice.users(), users(&[("alice", true), ("bob", true)]));
    bob.expect(&["link alice"]);
    host.expect(&["link alice"]);
    assert_eq!(unsafe { krmx_client_leave(alice.raw) }, KRMX_OK);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_UNLINKING);
    alice.expect(&["unlink alice", "leave alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    bob.expect(&["unlink alice", "leave alice"]);
    assert_eq!(bob.users(), users(&[("bob", true)]));
    host.expect(&["unlink alice", "leave alice"]);

    // Link again (a new user now), then the server kicks.
    alice.link("alice", None);
    alice.expect_accept("alice", &[("bob", true)]);
    bob.expect(&["join alice", "link alice"]);
    host.expect(&["join alice", "link alice"]);
    assert_eq!(unsafe { krmx_server_kick(host.raw, c("alice").as_ptr()) }, KRMX_OK);
    alice.expect(&["unlink alice", "leave alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    bob.expect(&["unlink alice", "leave alice"]);
    host.expect(&["unlink alice", "leave alice"]);

    // Link again, then the server unlinks.
    alice.link("alice", None);
    alice.expect_accept("alice", &[("bob", true)]);
    bob.expect(&["join alice", "link alice"]);
    host.expect(&["join alice", "link alice"]);
    assert_eq!(unsafe { krmx_server_unlink(host.raw, c("alice").as_ptr()) }, KRMX_OK);
    alice.expect(&["unlink alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTED);
    assert_eq!(alice.users(), []);
    bob.expect(&["unlink alice"]);
    assert_eq!(bob.users(), users(&[("bob", true), ("alice", false)]));
    host.expect(&["unlink alice"]);

    // Link again, then disconnect.
    alice.link("alice", None);
    alice.expect_accept("alice", &[("bob", true)]);
    bob.expect(&["link alice"]);
    host.expect(&["link alice"]);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_OK);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSING);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    alice.expect(&["close disconnected by the client"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSED);
    assert_eq!(alice.users(), []);
    assert_eq!(alice.username(), None);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    assert_eq!(alice.send("chat/say", None), KRMX_ERR_WRONG_STATUS);
    host.expect(&["unlink alice"]);
    bob.expect(&["unlink alice"]);

    // Connect again after the close.
    alice.connect(&host.url());
    alice.expect(&["connect"]);
    alice.link("alice", None);
    alice.expect_accept("alice", &[("bob", true)]);
    assert_eq!(alice.users(), users(&[("bob", true), ("alice", true)]));
    host.expect(&["link alice"]);
    bob.expect(&["link alice"]);

    // Disconnecting a connected (not linked) client.
    assert_eq!(unsafe { krmx_client_unlink(alice.raw) }, KRMX_OK);
    alice.expect(&["unlink alice"]);
    host.expect(&["unlink alice"]);
    bob.expect(&["unlink alice"]);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_OK);
    alice.expect(&["close disconnected by the client"]);
    host.expect_nothing(50);
    bob.expect_nothing(0);
}

// =============================================================================================
// 6. A first connect that fails is not retried.
// =============================================================================================

#[test]
fn a_first_connect_that_fails_closes_without_reconnecting() {
    let _shared = shared();
    let (_reserved, port) = closed_port();
    let mut client = Client::new("lost", reconnecting);
    for _ in 0..2 {
        client.connect(&url(port));
        let ev = client.next();
        assert!(ev.line.starts_with("close cannot connect to"), "{:?}", ev);
        assert!(ev.reason.as_deref().unwrap().contains(&port.to_string()), "{:?}", ev);
        assert_eq!(client.status(), KRMX_CLIENT_STATUS_CLOSED);
        client.expect_nothing(150);
    }
}

// =============================================================================================
// 7. Reconnecting.
// =============================================================================================

/// (a) The connection is severed under a linked client: it comes back, re-linked with the same
/// username and auth.
#[test]
fn reconnect_after_the_connection_is_severed_relinks_with_the_same_auth() {
    let _shared = shared();
    let mut host = Host::start(|config| config.authenticate = true);
    let proxy = Proxy::start(host.port);
    let mut alice = Client::new("alice", reconnecting);
    alice.connect(&proxy.url());
    alice.expect(&["connect"]);
    alice.link("alice", Some("alice-token-1"));
    let request = host.expect_authenticate("alice new=true auth=alice-token-1");
    host.authenticate(request, true, None);
    alice.expect(&["accept", "join alice", "link alice"]);
    host.expect(&["join alice", "link alice"]);
    let mut bob = Client::new("bob", |_| {});
    bob.connect(&host.url());
    bob.expect(&["connect"]);
    bob.link("bob", Some("bob-token"));
    let request = host.expect_authenticate("bob new=true auth=bob-token");
    host.authenticate(request, true, None);
    bob.expect_accept("bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);
    host.expect(&["join bob", "link bob"]);

    proxy.sever();
    host.expect(&["unlink alice"]);
    bob.expect(&["unlink alice"]);
    let ev = alice.next();
    assert_eq!(ev.line, "reconnecting 1", "{:?} (seen {:?})", ev, alice.seen);
    assert!((25..=50).contains(&ev.delay_ms), "attempt 1 waits half to all of the 50 ms backoff: {ev:?}");
    assert!(!ev.reason.as_deref().unwrap().is_empty());
    assert_eq!(alice.users(), []);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTING);

    // The proxy still accepts: the client comes back and re-links with the same auth. (Its
    // timers and the re-link run inside its poll.)
    alice.expect(&["connect"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKING);
    let request = host.expect_authenticate("alice new=false auth=alice-token-1");
    host.authenticate(request, true, None);
    alice.expect(&["accept", "reconnect", "join alice", "link alice", "join bob", "link bob"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(alice.username().as_deref(), Some("alice"));
    assert_eq!(alice.users(), users(&[("alice", true), ("bob", true)]));
    host.expect(&["link alice"]);
    bob.expect(&["link alice"]);

    // And works as before.
    assert_eq!(alice.send("chat/back", Some("1")), KRMX_OK);
    host.expect(&["message alice chat/back 1"]);
    host.send("alice", "chat/welcome", None);
    alice.expect(&["message chat/welcome (none)"]);
    alice.expect_nothing(0);
}

/// (b) The server restarts on the same port: the client retries until it is back, and is
/// re-linked there as a new user.
#[test]
fn reconnect_after_the_server_restarts_on_the_same_port() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let port = host.port;
    let mut alice = Client::new("alice", reconnecting);
    alice.connect_and_link(&host.url(), "alice", &[]);
    host.expect(&["join alice", "link alice"]);

    assert_eq!(unsafe { krmx_server_close(host.raw) }, KRMX_OK);
    host.expect(&["unlink alice", "leave alice", "close"]);
    drop(host);
    // A closing server makes every user leave before it closes the sockets.
    alice.expect(&["unlink alice", "leave alice", "reconnecting 1", "reconnecting 2"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTING);
    assert_eq!(alice.users(), []);

    // Attempt 1 found nothing; attempt 2 is still waiting: start the new server now.
    let mut host = Host::start_on(port, |_| {});
    let mut seen = Vec::new();
    loop {
        let ev = alice.next();
        if ev.line == "connect" {
            break;
        }
        seen.push(ev.attempt);
        assert!(ev.line.starts_with("reconnecting "), "{:?} (seen {:?})", ev, alice.seen);
    }
    // Normally none: attempt 2 was due after the server was back.
    assert!(seen.iter().copied().eq(3..3 + seen.len() as u32), "attempts count up: {:?}", alice.seen);
    alice.expect(&["accept", "reconnect", "join alice", "link alice"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(alice.users(), users(&[("alice", true)]));
    host.expect(&["join alice", "link alice"]);
    assert_eq!(host.users(), users(&[("alice", true)]));
}

/// (c) A pulled cable: nothing arrives any more, yet the sockets stay open. The client's liveness
/// check notices first; the server still holds the old link until its own ping notices, and the
/// client retries the re-link until then.
#[test]
fn reconnect_after_a_pulled_cable_retries_the_relink_until_the_server_lets_go() {
    let _shared = shared();
    let mut host = Host::start(|config| config.ping_interval_ms = 1000);
    let proxy = Proxy::start(host.port);
    let mut alice = Client::new("alice", |config| {
        reconnecting(config);
        config.liveness_timeout_ms = 400;
    });
    alice.connect_and_link(&proxy.url(), "alice", &[]);
    let mut bob = Client::new("bob", |_| {});
    bob.connect_and_link(&host.url(), "bob", &[("alice", true)]);
    alice.expect(&["join bob", "link bob"]);
    host.expect(&["join alice", "link alice", "join bob", "link bob"]);

    proxy.blackhole();
    let ev = alice.next();
    assert_eq!(ev.line, "reconnecting 1", "{:?} (seen {:?})", ev, alice.seen);
    assert!(ev.reason.as_deref().unwrap().contains("ping timeout"), "{ev:?}");
    assert_eq!(alice.users(), []);
    alice.expect(&["connect"]);
    let mut stale = 0;
    loop {
        let ev = alice.next();
        if ev.line == "accept" {
            break;
        }
        stale += 1;
        assert_eq!(ev.line, format!("reconnecting {}", stale + 1), "(seen {:?})", alice.seen);
        assert_eq!(ev.reason.as_deref(), Some("user alice is already linked to a connection"));
        assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKING);
        assert_eq!(alice.users(), []);
    }
    // The client notices within 400 ms, the server only after 1 to 2 s.
    assert!(stale >= 1, "the server let go before the client came back (seen {:?})", alice.seen);
    alice.expect(&["reconnect", "join alice", "link alice", "join bob", "link bob"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    assert_eq!(alice.users(), users(&[("alice", true), ("bob", true)]));
    host.expect(&["unlink alice", "link alice"]);
    bob.expect(&["unlink alice", "link alice"]);
    alice.expect_nothing(0);
}

/// (d) Reconnecting gives up after the configured number of attempts.
#[test]
fn reconnect_gives_up_after_max_attempts() {
    let _shared = shared();
    let host = Host::start(|_| {});
    let mut alice = Client::new("alice", |config| {
        reconnecting(config);
        config.reconnect_min_delay_ms = 100;
        config.reconnect_max_attempts = 2;
    });
    alice.connect_and_link(&host.url(), "alice", &[]);
    // Freed: the connections close without the users leaving.
    drop(host);
    alice.expect(&["reconnecting 1", "reconnecting 2"]);
    let ev = alice.next();
    assert!(ev.line.starts_with("close gave up reconnecting after 2 attempts"), "{ev:?} (seen {:?})", alice.seen);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSED);
    assert_eq!(alice.users(), []);
    assert_eq!(alice.username(), None);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_ERR_WRONG_STATUS);
    alice.expect_nothing(100);
}

/// (e) Disconnecting while waiting for the next attempt closes at once, for good.
#[test]
fn disconnect_during_the_reconnect_wait_closes_at_once() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let proxy = Proxy::start(host.port);
    let mut alice = Client::new("alice", |config| {
        reconnecting(config);
        config.reconnect_min_delay_ms = 300;
        config.reconnect_max_delay_ms = 1000;
    });
    alice.connect_and_link(&proxy.url(), "alice", &[]);
    host.expect(&["join alice", "link alice"]);

    proxy.sever();
    host.expect(&["unlink alice"]);
    alice.expect(&["reconnecting 1"]);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CONNECTING);
    assert_eq!(unsafe { krmx_client_disconnect(alice.raw) }, KRMX_OK);
    assert_eq!(alice.poll(0).map(|ev| ev.line).as_deref(), Some("close disconnected by the client"));
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_CLOSED);
    // Attempt 1 was due within 300 ms: it never comes.
    alice.expect_nothing(400);
    host.expect_nothing(0);

    alice.connect(&proxy.url());
    alice.expect(&["connect"]);
    alice.link("alice", None);
    alice.expect_accept("alice", &[]);
    host.expect(&["link alice"]);
}

// =============================================================================================
// 8. Many clients share the runtime.
// =============================================================================================

#[test]
fn a_thousand_clients_share_a_few_threads() {
    let _exclusive = exclusive();
    let mut host = Host::start(|_| {});
    let url = host.url();
    let mut clients: Vec<Client> = Vec::with_capacity(1000);
    // In batches, so that the listen backlog never overflows.
    for batch in 0..10 {
        let start = clients.len();
        for i in 0..100 {
            let mut client = Client::new(&format!("client {}", batch * 100 + i), |_| {});
            client.connect(&url);
            clients.push(client);
        }
        let mut waiting: Vec<usize> = (start..clients.len()).collect();
        let deadline = Instant::now() + TIMEOUT * 2;
        while !waiting.is_empty() {
            waiting.retain(|&i| match clients[i].poll(0) {
                Some(ev) => {
                    assert_eq!(ev.line, "connect", "client {i}");
                    false
                }
                None => true,
            });
            assert!(Instant::now() < deadline, "{} clients did not connect in time: {waiting:?}", waiting.len());
            if !waiting.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    assert!(clients.iter().all(|c| c.status() == KRMX_CLIENT_STATUS_CONNECTED));
    let threads = thread_count();
    assert!(threads < 40, "{threads} threads for 1000 clients and a server");

    let names: Vec<String> = (0..50).map(|i| format!("user-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        clients[i].link(name, None);
        let earlier: Vec<(&str, bool)> = names[..i].iter().map(|n| (n.as_str(), true)).collect();
        clients[i].expect_accept(name, &earlier);
        host.expect(&[&format!("join {name}"), &format!("link {name}")]);
    }
    let later: Vec<String> = names[1..].iter().flat_map(|n| [format!("join {n}"), format!("link {n}")]).collect();
    clients[0].expect(&later.iter().map(String::as_str).collect::<Vec<_>>());
    let table: Vec<(String, bool)> = names.iter().map(|n| (n.clone(), true)).collect();
    assert_eq!(clients[0].users(), table);
    assert_eq!(clients[49].users(), table);
    assert_eq!(clients[50].users(), []);
    assert_eq!(host.users(), table);
    let threads = thread_count();
    assert!(threads < 40, "{threads} threads for 1000 clients and a server");

    drop(clients);
    let unlinks: Vec<String> = names.iter().map(|n| format!("unlink {n}")).collect();
    let mut got: Vec<String> = (0..50).map(|_| host.next(TIMEOUT).expect("an unlink per linked client").0).collect();
    got.sort();
    assert_eq!(got, unlinks);
}

// =============================================================================================
// 9. Waking a blocking poll.
// =============================================================================================

#[test]
fn wake_from_another_thread_ends_a_blocking_poll() {
    let _shared = shared();
    let mut host = Host::start(|_| {});
    let mut alice = Client::new("alice", |_| {});
    let raw = alice.raw as usize;

    // Not even connected: a blocking poll waits until woken.
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(unsafe { krmx_client_wake(raw as *mut KrmxClient) }, KRMX_OK);
        });
        let mut event = KrmxEvent::none();
        event.kind = KRMX_EVENT_JOIN;
        let result = guarded("wake", || unsafe { krmx_client_poll(raw as *mut KrmxClient, &mut event, -1) });
        assert_eq!(result, KRMX_NO_EVENT);
        assert_eq!(event.kind, KRMX_EVENT_NONE);
    });

    alice.connect_and_link(&host.url(), "alice", &[]);
    host.expect(&["join alice", "link alice"]);
    // Linked and idle: woken again.
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(unsafe { krmx_client_wake(raw as *mut KrmxClient) }, KRMX_OK);
        });
        let mut event = KrmxEvent::none();
        let result = guarded("wake", || unsafe { krmx_client_poll(raw as *mut KrmxClient, &mut event, -1) });
        assert_eq!((result, event.kind), (KRMX_NO_EVENT, KRMX_EVENT_NONE));
    });
    // A wake before the poll ends the next poll at once; later polls wait as usual.
    assert_eq!(unsafe { krmx_client_wake(alice.raw) }, KRMX_OK);
    let mut event = KrmxEvent::none();
    assert_eq!(guarded("early wake", || unsafe { krmx_client_poll(raw as *mut KrmxClient, &mut event, -1) }), KRMX_NO_EVENT);
    alice.expect_nothing(30);

    // An event still ends a blocking poll: a message from the server, sent from another thread.
    let server = host.raw as usize;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let (name, kind) = (c("alice"), c("chat/hi"));
            let r = unsafe { krmx_server_send(server as *mut KrmxServer, name.as_ptr(), kind.as_ptr(), ptr::null()) };
            assert_eq!(r, KRMX_OK);
        });
        let mut event = KrmxEvent::none();
        let result = guarded("message", || unsafe { krmx_client_poll(raw as *mut KrmxClient, &mut event, -1) });
        assert_eq!(result, KRMX_OK);
        assert_eq!(render_client(&event).line, "message chat/hi (none)");
    });
    // And so does a disconnect from another thread.
    std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(unsafe { krmx_client_disconnect(raw as *mut KrmxClient) }, KRMX_OK);
        });
        let mut event = KrmxEvent::none();
        let result = guarded("disconnect", || unsafe { krmx_client_poll(raw as *mut KrmxClient, &mut event, -1) });
        assert_eq!(result, KRMX_OK);
        assert_eq!(render_client(&event).line, "close disconnected by the client");
    });
    host.expect(&["unlink alice"]);
}

// =============================================================================================
// 10. Pongs: a client whose own liveness check is off sends nothing but pongs, and stays linked
//     through many of the server's ping intervals (a client that did not answer would be closed
//     at the second ping, and its user unlinked).
// =============================================================================================

#[test]
fn the_client_answers_the_servers_pings() {
    let _shared = shared();
    let mut host = Host::start(|config| config.ping_interval_ms = 50);
    let mut alice = Client::new("alice", |config| config.liveness_timeout_ms = 0);
    alice.connect_and_link(&host.url(), "alice", &[]);
    host.expect(&["join alice", "link alice"]);
    host.expect_nothing(600);
    alice.expect_nothing(0);
    assert_eq!(alice.status(), KRMX_CLIENT_STATUS_LINKED);
    host.send("alice", "still/there", Some("true"));
    alice.expect(&["message still/there true"]);
}
