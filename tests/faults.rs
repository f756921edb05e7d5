//! Peers that vanish at the worst moments: mid-handshake, mid-frame, and without a close. Each
//! must cost the server nothing: its place is given back, its user unlinked, everyone else served.
//! (A server restarted under linked clients, and a port already taken, are tried in
//! tests/ffi_client.rs and tests/server_sockets.rs.)

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::server_harness::Harness;
use common::*;
use krmx::ServerEvent;

/// Connects once the server has given back the place of a vanished peer (one place in all).
fn connect_when_place_free(h: &Harness) -> Client {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match try_connect(&h.url()) {
            Ok(client) => return client,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the vanished peer's place was not given back: {e:?}"),
        }
    }
}

#[test]
fn a_peer_vanishing_mid_handshake_gives_its_place_back() {
    let h = Harness::start(|c| c.max_connections = 1);
    for cut in [1, 20, 60] {
        let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut raw = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        raw.write_all(&request.as_bytes()[..cut]).unwrap();
        drop(raw);
        let mut client = connect_when_place_free(&h);
        client.link("simon");
        if cut == 1 {
            h.expect_join_and_link("simon");
        } else {
            h.expect(ServerEvent::Link { username: "simon".into() });
        }
        client.close();
        h.expect(ServerEvent::Unlink { username: "simon".into() });
    }
}

#[test]
fn a_peer_vanishing_mid_frame_or_without_a_close_is_unlinked_and_others_are_served() {
    let h = Harness::start(|_| {});
    let mut bystander = h.linked("bystander");
    // Half a frame: a header promising 100 bytes, 10 of them, then the socket is gone.
    let half = h.linked("half");
    let mut raw = half.tcp().try_clone().unwrap();
    raw.write_all(&[0x81, 0x80 | 100, 0, 0, 0, 0]).unwrap();
    raw.write_all(b"{\"type\":\"x").unwrap();
    raw.shutdown(Shutdown::Both).unwrap();
    h.expect(ServerEvent::Unlink { username: "half".into() });
    bystander.expect_frames(&[joined("half"), linked("half"), unlinked("half")]);
    // Gone without a close frame or a FIN the server could see first: a reset.
    let reset = h.linked("reset");
    bystander.expect_frames(&[joined("reset"), linked("reset")]);
    let raw = reset.tcp().try_clone().unwrap();
    // SO_LINGER 0: closing sends RST instead of FIN.
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&raw);
    // SAFETY: a valid socket fd and a correctly sized option value.
    let set = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&linger as *const libc::linger).cast(), std::mem::size_of::<libc::linger>() as u32)
    };
    assert_eq!(set, 0);
    drop(reset);
    drop(raw);
    h.expect(ServerEvent::Unlink { username: "reset".into() });
    bystander.expect_frame(&unlinked("reset"));
    assert_eq!(
        h.users(),
        [("bystander".to_string(), true), ("half".to_string(), false), ("reset".to_string(), false)]
    );
    bystander.send_text(&frame("chat/say", None));
    h.expect(ServerEvent::Message {
        username: "bystander".into(),
        message: krmx::Message::custom("chat/say", None).unwrap(),
    });
}
