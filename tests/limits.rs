//! The server's limits over real sockets: most connections (in all and per address), most users,
//! the handshake time limit against a slowloris, and the link time limit. Each test tries the abuse
//! and checks both the refusal and that everyone else keeps working.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::server_harness::Harness;
use common::*;
use krmx::{ErrorKind, ServerEvent};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Error as WsError};

/// The status and body with which the server refused the handshake of `url`.
fn refusal(url: &str) -> (u16, String) {
    match connect_error(url) {
        WsError::Http(response) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().to_string();
            (response.status().as_u16(), body)
        }
        other => panic!("connecting to {url}: expected an HTTP error response, got {other:?}"),
    }
}

/// Connects until the server takes the connection (a place frees up only once the server has seen
/// the previous socket close).
fn connect_when_admitted(url: &str) -> Client {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match try_connect(url) {
            Ok(client) => return client,
            Err(WsError::Http(response)) if response.status() == 503 && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("connecting to {url}: {e:?}"),
        }
    }
}

#[test]
fn connections_over_the_cap_are_answered_503_and_a_freed_place_is_taken_again() {
    let h = Harness::start(|c| c.max_connections = 2);
    let mut simon = h.linked("simon");
    let lisa = h.connect("lisa");
    assert_eq!(refusal(&h.url()), (503, "server is full: too many connections".to_string()));
    // The refusal disturbed nobody.
    simon.send_text(&frame("chat/say", Some("still here".into())));
    h.expect(ServerEvent::Message {
        username: "simon".into(),
        message: krmx::Message::custom("chat/say", Some("still here".into())).unwrap(),
    });
    lisa.drop_socket();
    let mut marco = connect_when_admitted(&h.url()).labelled("marco");
    marco.link("marco");
    h.expect(ServerEvent::Join { username: "marco".into() });
    h.expect(ServerEvent::Link { username: "marco".into() });
}

#[test]
fn sockets_still_in_their_handshake_count_and_a_trickled_handshake_is_cut_off() {
    let h = Harness::start(|c| {
        c.max_connections = 1;
        c.handshake_timeout = Duration::from_millis(300);
    });
    // A slowloris: a valid request, one byte at a time, far slower than the time limit allows.
    let mut slow = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    slow.write_all(&request.as_bytes()[..4]).unwrap();
    // The listener accepts in arrival order, so the trickling socket (connected first) holds the
    // only place by the time a real client's connection is taken up.
    assert_eq!(refusal(&h.url()).0, 503, "the trickling socket holds the only place");
    let started = Instant::now();
    let cut_off = request.as_bytes()[4..].iter().find_map(|byte| {
        std::thread::sleep(Duration::from_millis(50));
        slow.write_all(&[*byte]).err()
    });
    assert!(
        cut_off.is_some(),
        "the server read a whole trickled handshake ({} bytes over {:?}) instead of cutting it off",
        request.len(),
        started.elapsed()
    );
    let mut real = connect_when_admitted(&h.url());
    real.link("simon");
    h.expect(ServerEvent::Join { username: "simon".into() });
}

/// A WebSocket from the loopback source address `source` (any of 127.0.0.0/8).
fn connect_from(source: &str, url: &str) -> Result<(), WsError> {
    let request = url.into_client_request()?;
    let port = request.uri().port_u16().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{source}:0").parse::<SocketAddr>().unwrap())?;
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await?.into_std()
    })?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    match tungstenite::client(request, stream) {
        Ok((ws, _)) => {
            // Keep it open for the rest of the test.
            std::mem::forget(ws);
            Ok(())
        }
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("handshake interrupted"),
    }
}

#[test]
fn the_per_address_cap_refuses_one_address_and_not_another() {
    let h = Harness::start(|c| c.max_connections_per_address = Some(2));
    connect_from("127.0.0.2", &h.url()).unwrap();
    connect_from("127.0.0.2", &h.url()).unwrap();
    match connect_from("127.0.0.2", &h.url()) {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.body().as_deref(), Some(&b"too many connections from this address"[..]));
        }
        other => panic!("a third connection from 127.0.0.2 should be refused, got {other:?}"),
    }
    connect_from("127.0.0.3", &h.url()).expect("another address is not limited by 127.0.0.2's cap");
    let mut simon = h.connect("simon");
    simon.link("simon");
    h.expect(ServerEvent::Join { username: "simon".into() });
}

#[test]
fn a_full_server_rejects_new_users_but_links_known_ones() {
    let h = Harness::start(|c| c.max_users = 2);
    let _simon = h.linked("simon");
    h.server.join("lisa").unwrap();
    h.expect(ServerEvent::Join { username: "lisa".into() });
    let mut marco = h.connect("marco");
    marco.send_link("marco");
    marco.expect_frame(&rejected("server is full"));
    let error = h.server.join("marco").unwrap_err();
    assert_eq!(error.kind, ErrorKind::LimitReached);
    assert_eq!(error.message, "the server already has its most users (2)");
    // The same socket links as a known user.
    marco.link("lisa");
    h.expect(ServerEvent::Link { username: "lisa".into() });
    assert_eq!(h.users(), [("simon".to_string(), true), ("lisa".to_string(), true)]);
}

#[test]
fn connections_that_do_not_link_in_time_are_closed_with_the_reason() {
    let h = Harness::start(|c| c.link_timeout = Some(Duration::from_millis(300)));
    let mut idle = h.connect("idle");
    let mut simon = h.linked("simon");
    let close = idle.expect_closed().expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (1000, "link timeout"));
    // A linked connection is not limited; once unlinked its time runs.
    simon.expect_silence(Duration::from_millis(600));
    simon.send_text(&frame("krmx/unlink", None));
    simon.expect_frame(&unlinked("simon"));
    h.expect(ServerEvent::Unlink { username: "simon".into() });
    let close = simon.expect_closed().expect("a close frame");
    assert_eq!(close.reason.as_str(), "link timeout");
    assert_eq!(h.users(), [("simon".to_string(), false)]);
    h.expect_no_event(Duration::from_millis(100));
}

#[test]
fn an_event_queue_set_smaller_than_one_message_still_takes_the_largest_message() {
    // A message waits parsed and counts four times its size; the queue grows to hold one.
    let h = Harness::start(|c| {
        c.event_queue_bytes = 1024;
        c.max_message_size = 64 * 1024;
    });
    let mut simon = h.linked("simon");
    let big = "x".repeat(60 * 1024);
    simon.send_text(&frame("big", Some(big.clone().into())));
    simon.send_text(&frame("small", None));
    h.expect(ServerEvent::Message { username: "simon".into(), message: krmx::Message::custom("big", Some(big.into())).unwrap() });
    h.expect(ServerEvent::Message { username: "simon".into(), message: krmx::Message::custom("small", None).unwrap() });
}
