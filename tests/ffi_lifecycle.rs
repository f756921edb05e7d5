//! Handles made and freed over and over, as a game engine's editor does on every Play: a server
//! listens, clients connect and link, everything is freed, and again, 200 times. After each
//! cycle the process must have exactly as many threads and file descriptors as after the first
//! (the shared I/O runtime's threads stay by design; nothing else may), and the next cycle listens
//! on the same port at once. The counts are taken right after the frees return, without waiting:
//! a `_free` joins what its handle started.
//!
//! One test in this binary, polling everything on the test thread, so that no other thread of the
//! test harness comes or goes while the threads are counted.

mod common;

use std::time::{Duration, Instant};

use common::ffi::client::Client;
use common::ffi::events::render_server;
use common::ffi::last_error;
use common::ffi::server::new_server;
use common::TIMEOUT;
use krmx::ffi::event::KrmxEvent;
use krmx::ffi::result::KrmxResult::*;
use krmx::ffi::server::*;

const CYCLES: usize = 200;
const CLIENTS: usize = 3;

/// Threads and open file descriptors of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resources {
    threads: usize,
    fds: usize,
}

impl Resources {
    fn now() -> Resources {
        let count = |dir: &str| std::fs::read_dir(dir).unwrap().count();
        Resources { threads: count("/proc/self/task"), fds: count("/proc/self/fd") }
    }
}

/// Every server event that is waiting now, rendered.
fn server_events(server: *mut KrmxServer) -> Vec<String> {
    let mut lines = Vec::new();
    let mut event = KrmxEvent::none();
    while unsafe { krmx_server_poll(server, &mut event, 0) } == KRMX_OK {
        lines.push(render_server(&event));
    }
    lines
}

/// Polls the server and `client` in turn until the client's next event arrives; the server's
/// events meanwhile are appended to `seen`.
fn next_client_line(server: *mut KrmxServer, client: &mut Client, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        seen.extend(server_events(server));
        if let Some(ev) = client.poll(5) {
            return ev.line;
        }
    }
    panic!("{}: no event within {TIMEOUT:?}; the server saw {seen:?}", client.label);
}

/// Connects and links `username`, polling the server meanwhile. The client must see CONNECT,
/// ACCEPT, and JOIN and LINK of every user so far (`before` of them, then itself).
fn connect_and_link(server: *mut KrmxServer, url: &str, username: &str, before: &[String], seen: &mut Vec<String>) -> Client {
    let mut client = Client::new(username, |_| {});
    client.connect(url);
    assert_eq!(next_client_line(server, &mut client, seen), "connect");
    client.link(username, None);
    let mut expected = vec!["accept".to_string()];
    for name in before.iter().map(String::as_str).chain([username]) {
        expected.push(format!("join {name}"));
        expected.push(format!("link {name}"));
    }
    let got: Vec<String> = expected.iter().map(|_| next_client_line(server, &mut client, seen)).collect();
    assert_eq!(got, expected);
    client
}

/// One cycle; returns the port listened on.
fn cycle(index: usize, port: u16) -> u16 {
    let server = new_server(|_| {});
    let listened = unsafe { krmx_server_listen(server, port) };
    assert_eq!(listened, KRMX_OK, "cycle {index}: listening on port {port} again right after the free: {}", last_error());
    let mut port = 0u16;
    assert_eq!(unsafe { krmx_server_port(server, &mut port) }, KRMX_OK);
    let url = format!("ws://127.0.0.1:{port}");

    let mut seen = Vec::new();
    let mut names = Vec::new();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let name = format!("user{i}");
        clients.push(connect_and_link(server, &url, &name, &names, &mut seen));
        names.push(name);
    }
    // The last LINK may still be on its way to the server's event queue: it is decided there,
    // but polled by the server only after the client heard about it.
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < 1 + 2 * CLIENTS && Instant::now() < deadline {
        seen.extend(server_events(server));
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut expected = vec![format!("listen {port}")];
    for name in &names {
        expected.push(format!("join {name}"));
        expected.push(format!("link {name}"));
    }
    assert_eq!(seen, expected, "cycle {index}: the server's events");

    if index % 2 == 0 {
        // The server goes first, its users still connected: when the free returns, every
        // connection got its close frame, so the clients hear of it without the server.
        assert_eq!(unsafe { krmx_server_free(server) }, KRMX_OK);
        for (i, client) in clients.iter_mut().enumerate() {
            let mut expected: Vec<String> =
                names[i + 1..].iter().flat_map(|name| [format!("join {name}"), format!("link {name}")]).collect();
            expected.push("close closed by the peer (1001 going away)".to_string());
            let got: Vec<String> = expected.iter().map(|_| client.next().line).collect();
            assert_eq!(got, expected, "cycle {index}: {}", client.label);
        }
        drop(clients);
    } else {
        // The clients go first (linked); then the server, before it polled their unlinks.
        drop(clients);
        assert_eq!(unsafe { krmx_server_free(server) }, KRMX_OK);
    }
    port
}

#[test]
fn new_listen_link_free_cycles_leave_no_threads_sockets_or_ports_behind() {
    let mut port = 0;
    port = cycle(0, port);
    let after_first = Resources::now();
    let started = Instant::now();
    for index in 1..CYCLES {
        port = cycle(index, port);
        assert_eq!(Resources::now(), after_first, "cycle {index}: threads and file descriptors, right after the frees");
    }
    println!(
        "{} cycles of a server and {CLIENTS} linked clients in {:?}; {:?} after each",
        CYCLES - 1,
        started.elapsed(),
        after_first
    );
}
