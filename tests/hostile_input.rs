//! Hostile and malformed input over real sockets: each test attacks the server from one connection
//! and checks the outcome for the attacker exactly, and that another user is served throughout.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::server_harness::Harness;
use common::*;
use krmx::{Message, ServerEvent};
use serde_json::json;

/// One client-to-server WebSocket frame, masked with the all-zero key (so the payload goes as is).
fn raw_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const PING: u8 = 0x9;

/// Writes raw bytes past the WebSocket layer of `client`, from another thread (the server may stop
/// reading before all is written, and this thread must stay free to read).
fn write_raw(client: &Client, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut raw = client.tcp().try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = raw.write_all(&bytes);
    })
}

/// A bystander who is linked before the attack: it must still get its own messages through.
struct Bystander {
    client: Client,
}

impl Bystander {
    fn join(h: &Harness) -> Bystander {
        Bystander { client: h.linked("bystander") }
    }

    /// Says something; the host hears it, and the host's answer comes back.
    fn is_served(&mut self, h: &Harness, mut drain: impl FnMut(&ServerEvent) -> bool) {
        let message = Message::custom("chat/say", Some(json!("still here"))).unwrap();
        self.client.send_text(&frame("chat/say", Some(json!("still here"))));
        loop {
            let event = h.next_event();
            if event == (ServerEvent::Message { username: "bystander".into(), message: message.clone() }) {
                break;
            }
            assert!(drain(&event), "unexpected event while waiting for the bystander: {event:?}");
        }
        h.server.send("bystander", &Message::custom("chat/ack", None).unwrap()).unwrap();
        loop {
            let frame = self.client.recv_json();
            if frame["type"] == "chat/ack" {
                break;
            }
        }
    }
}

fn no_other_event(_: &ServerEvent) -> bool {
    false
}

#[test]
fn deeply_nested_json_is_an_invalid_message_not_a_stack_overflow() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    let mut attacker = h.connect("attacker");
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    attacker.send_text(&deep);
    attacker.expect_frame(&rejected("invalid message"));
    // Deep inside a valid envelope, from a linked connection: it is unlinked, as for any invalid
    // message, and its socket stays open.
    attacker.link("attacker");
    h.expect_join_and_link("attacker");
    attacker.send_text(&format!(r#"{{"type":"x","payload":{deep}}}"#));
    attacker.expect_frame(&unlinked("attacker"));
    h.expect(ServerEvent::Unlink { username: "attacker".into() });
    bystander.is_served(&h, no_other_event);
}

#[test]
fn huge_numbers_and_long_strings_are_handled_exactly() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    let mut attacker = h.linked("attacker");
    // A 300-digit integer is a number like any other (read as the nearest double).
    let digits = "9".repeat(300);
    attacker.send_text(&format!(r#"{{"type":"n","payload":{digits}}}"#));
    let ServerEvent::Message { username, message } = h.next_event() else { panic!("expected a message") };
    assert_eq!((username.as_str(), message.kind.as_str()), ("attacker", "n"));
    assert!(message.payload.as_ref().is_some_and(|p| p.is_number()), "{:?}", message.payload);
    // Numbers beyond every double cannot be read: an invalid message, which unlinks.
    for huge in ["1e999999".to_string(), "9".repeat(400)] {
        attacker.send_text(&format!(r#"{{"type":"n","payload":{huge}}}"#));
        attacker.expect_frame(&unlinked("attacker"));
        h.expect(ServerEvent::Unlink { username: "attacker".into() });
        attacker.link("attacker");
        h.expect(ServerEvent::Link { username: "attacker".into() });
    }
    // A 512 KiB string arrives whole.
    let long = "x".repeat(512 * 1024);
    attacker.send_text(&frame("s", Some(json!(long))));
    let ServerEvent::Message { message, .. } = h.next_event() else { panic!("expected a message") };
    assert_eq!(message.payload, Some(json!(long)));
    bystander.is_served(&h, no_other_event);
}

#[test]
fn invalid_utf8_closes_a_text_frame_with_1007_a_protocol_error_with_1002_and_binary_is_an_invalid_message() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    let mut binary = h.connect("binary");
    binary.send_binary(b"{\"type\":\"\xff\xfe\"}");
    binary.expect_frame(&rejected("invalid message"));
    let mut text = h.linked("text");
    write_raw(&text, raw_frame(TEXT, true, b"{\"type\":\"\xc3\x28\"}")).join().unwrap();
    let (frames, close) = text.recv_until_closed();
    assert_eq!(frames, Vec::<String>::new());
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1007));
    h.expect(ServerEvent::Unlink { username: "text".into() });
    // A frame with a reserved bit set breaks the protocol: 1002.
    let mut rsv = h.linked("rsv");
    let mut bad = raw_frame(TEXT, true, frame("x", None).as_bytes());
    bad[0] |= 0x40;
    write_raw(&rsv, bad).join().unwrap();
    let (frames, close) = rsv.recv_until_closed();
    assert_eq!(frames, Vec::<String>::new());
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1002));
    h.expect(ServerEvent::Unlink { username: "rsv".into() });
    bystander.is_served(&h, no_other_event);
}

#[test]
fn a_message_in_a_flood_of_one_byte_fragments_arrives_whole_and_an_endless_one_is_cut_at_the_limit() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    let mut attacker = h.linked("attacker");
    let text = frame("f", Some(json!("y".repeat(50_000))));
    let bytes = text.as_bytes();
    let mut flood = raw_frame(TEXT, false, &bytes[..1]);
    for byte in &bytes[1..bytes.len() - 1] {
        flood.extend(raw_frame(CONTINUATION, false, std::slice::from_ref(byte)));
    }
    flood.extend(raw_frame(CONTINUATION, true, &bytes[bytes.len() - 1..]));
    write_raw(&attacker, flood).join().unwrap();
    let ServerEvent::Message { message, .. } = h.next_event() else { panic!("expected the reassembled message") };
    assert_eq!(message, Message::custom("f", Some(json!("y".repeat(50_000)))).unwrap());

    // Fragments that never end: the connection is closed with 1009 once they pass 1 MiB.
    let mut endless = raw_frame(TEXT, false, b"[");
    for _ in 0..(2 << 20) / 1024 {
        endless.extend(raw_frame(CONTINUATION, false, &[b' '; 1024]));
    }
    let writer = write_raw(&attacker, endless);
    let (frames, close) = attacker.recv_until_closed();
    assert_eq!(frames, Vec::<String>::new());
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1009));
    writer.join().unwrap();
    h.expect(ServerEvent::Unlink { username: "attacker".into() });
    bystander.is_served(&h, no_other_event);
}

#[test]
fn many_tiny_frames_all_arrive_in_order() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    let mut attacker = h.linked("attacker");
    const COUNT: usize = 50_000;
    let mut flood = Vec::new();
    for i in 0..COUNT {
        flood.extend(raw_frame(TEXT, true, format!(r#"{{"type":"t","payload":{i}}}"#).as_bytes()));
    }
    let writer = write_raw(&attacker, flood);
    // Every one arrives, in order, and the bystander speaks in the middle of the flood and is heard.
    let next = std::cell::Cell::new(0);
    let in_order = |event: &ServerEvent| match event {
        ServerEvent::Message { username, message } if username == "attacker" => {
            assert_eq!(message.payload, Some(json!(next.get())));
            next.set(next.get() + 1);
            true
        }
        _ => false,
    };
    bystander.is_served(&h, in_order);
    while next.get() < COUNT {
        let event = h.next_event();
        assert!(in_order(&event), "unexpected {event:?}");
    }
    writer.join().unwrap();
    attacker.expect_silence(Duration::from_millis(50));
}

#[test]
fn a_ping_flood_disturbs_nobody_and_the_flooder_stays_linked() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    let mut attacker = h.linked("attacker");
    let mut flood = Vec::new();
    for i in 0..100_000u32 {
        flood.extend(raw_frame(PING, true, &i.to_be_bytes()));
    }
    // The attacker writes pings and reads nothing meanwhile.
    write_raw(&attacker, flood).join().unwrap();
    bystander.is_served(&h, no_other_event);
    // The attacker is still linked and served after the flood.
    attacker.send_text(&frame("chat/say", None));
    h.expect(ServerEvent::Message { username: "attacker".into(), message: Message::custom("chat/say", None).unwrap() });
    assert_eq!(h.users(), [("bystander".to_string(), true), ("attacker".to_string(), true)]);
}

#[test]
fn a_header_flood_is_refused_before_any_websocket_exists() {
    let h = Harness::start(|_| {});
    let mut bystander = Bystander::join(&h);
    // Many headers, then one huge header: neither becomes a connection.
    let many: String = (0..10_000).map(|i| format!("X-Flood-{i}: {}\r\n", "a".repeat(20))).collect();
    let huge = format!("X-Huge: {}\r\n", "b".repeat(4 << 20));
    for headers in [many, huge] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
        );
        let mut raw = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        raw.set_read_timeout(Some(TIMEOUT)).unwrap();
        let writer = {
            let mut raw = raw.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = raw.write_all(request.as_bytes());
            })
        };
        let answer = read_until_eof(&mut raw);
        assert!(!String::from_utf8_lossy(&answer).contains("101"), "no upgrade for a header flood");
        writer.join().unwrap();
    }
    bystander.is_served(&h, no_other_event);
    assert_eq!(h.server.users().len(), 1);
}

#[test]
fn ten_thousand_users_join_and_leave_while_another_is_served() {
    const USERS: usize = 10_000;
    const SOCKETS: usize = 8;
    let h = Harness::start(|_| {});
    let mut observer = h.linked("observer");
    // Eight sockets, each linking and leaving its share of the users in turn.
    let workers: Vec<_> = (0..SOCKETS)
        .map(|w| {
            let url = h.url();
            std::thread::spawn(move || {
                let mut client = connect(&url);
                for i in (w..USERS).step_by(SOCKETS) {
                    let name = format!("u{i}");
                    client.send_link(&name);
                    loop {
                        let frame = client.recv_json();
                        if frame == serde_json::from_str::<serde_json::Value>(&linked(&name)).unwrap() {
                            break;
                        }
                    }
                    client.send_text(&frame("krmx/leave", None));
                    loop {
                        let frame = client.recv_json();
                        if frame == serde_json::from_str::<serde_json::Value>(&left(&name)).unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // The host sees join, link, unlink, leave for every user, in that order per user.
    let mut stage = std::collections::HashMap::new();
    let mut left_count = 0;
    while left_count < USERS {
        let (name, expected_stage) = match h.next_event() {
            ServerEvent::Join { username } => (username, 0),
            ServerEvent::Link { username } => (username, 1),
            ServerEvent::Unlink { username } => (username, 2),
            ServerEvent::Leave { username } => {
                left_count += 1;
                (username, 3)
            }
            other => panic!("unexpected {other:?}"),
        };
        let seen = stage.entry(name.clone()).or_insert(0);
        assert_eq!(*seen, expected_stage, "{name}: events out of order");
        *seen += 1;
    }
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(stage.len(), USERS);
    assert_eq!(h.users(), [("observer".to_string(), true)]);
    // The observer was told of every one of them, and is still served.
    let mut told = [0usize; 4];
    loop {
        match observer.recv(Duration::from_millis(500)) {
            Incoming::Text(text) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                let kind = ["krmx/joined", "krmx/linked", "krmx/unlinked", "krmx/left"]
                    .iter()
                    .position(|k| frame["type"] == *k)
                    .unwrap_or_else(|| panic!("unexpected {frame}"));
                told[kind] += 1;
            }
            Incoming::Timeout => break,
            other => panic!("observer: {other:?}"),
        }
    }
    assert_eq!(told, [USERS; 4]);
    observer.send_text(&frame("chat/say", Some(json!("still here"))));
    h.expect(ServerEvent::Message {
        username: "observer".into(),
        message: Message::custom("chat/say", Some(json!("still here"))).unwrap(),
    });
}
