//! `krmx::Server` over real sockets on 127.0.0.1: exact frames, their order, and the host's events.
//!
//! Each test runs its own server on a free port, polled by a [`Harness`] thread.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::server_harness::Harness;
use common::*;
use krmx::{ErrorKind, Message, QueryRequirement, Server, ServerConfig, ServerEvent, ServerStatus};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn msg(kind: &str, payload: Option<Value>) -> Message {
    Message::custom(kind, payload).unwrap()
}

fn user(name: &str) -> String {
    name.to_string()
}

// ----- linking --------------------------------------------------------------------------------

#[test]
fn first_and_second_user_link_with_frames_in_protocol_order() {
    let h = Harness::start(|_| {});

    let mut simon = h.connect("simon");
    simon.send_link("simon");
    simon.expect_frames(&[
        r#"{"type":"krmx/accepted"}"#,
        r#"{"type":"krmx/joined","payload":{"username":"simon"}}"#,
        r#"{"type":"krmx/linked","payload":{"username":"simon"}}"#,
    ]);
    h.expect_join_and_link("simon");

    // A user the host joined (never linked) is in the table, unlinked.
    h.server.join("bob").unwrap();
    h.expect(ServerEvent::Join { username: user("bob") });
    simon.expect_frame(r#"{"type":"krmx/joined","payload":{"username":"bob"}}"#);

    let mut lisa = h.connect("lisa");
    lisa.send_link("lisa");
    lisa.expect_frames(&[
        r#"{"type":"krmx/accepted"}"#,
        r#"{"type":"krmx/joined","payload":{"username":"simon"}}"#,
        r#"{"type":"krmx/linked","payload":{"username":"simon"}}"#,
        r#"{"type":"krmx/joined","payload":{"username":"bob"}}"#,
        r#"{"type":"krmx/joined","payload":{"username":"lisa"}}"#,
        r#"{"type":"krmx/linked","payload":{"username":"lisa"}}"#,
    ]);
    simon.expect_frames(&[
        r#"{"type":"krmx/joined","payload":{"username":"lisa"}}"#,
        r#"{"type":"krmx/linked","payload":{"username":"lisa"}}"#,
    ]);
    h.expect_join_and_link("lisa");
    assert_eq!(h.users(), vec![(user("simon"), true), (user("bob"), false), (user("lisa"), true)]);

    // Nothing else was sent to anyone.
    simon.expect_silence(Duration::from_millis(100));
    lisa.expect_silence(Duration::from_millis(10));
    h.expect_no_event(Duration::from_millis(10));
}

#[test]
fn link_requests_are_rejected_with_the_exact_reasons_and_the_socket_stays_open() {
    let h = Harness::start(|_| {});
    let mut c = h.connect("tries");

    // Malformed requests.
    for request in [
        json!({ "type": "krmx/link" }),
        json!({ "type": "krmx/link", "payload": "simon" }),
        json!({ "type": "krmx/link", "payload": ["simon", "0.5.4"] }),
        json!({ "type": "krmx/link", "payload": null }),
        json!({ "type": "krmx/link", "payload": { "version": "0.5.4" } }),
        json!({ "type": "krmx/link", "payload": { "username": 3, "version": "0.5.4" } }),
        json!({ "type": "krmx/link", "payload": { "username": "simon" } }),
        json!({ "type": "krmx/link", "payload": { "username": "simon", "version": 5 } }),
        json!({ "type": "krmx/link", "payload": { "username": "simon", "version": "0.5.4", "auth": 42 } }),
        json!({ "type": "krmx/link", "payload": { "username": "simon", "version": "0.5.4", "auth": { "t": 1 } } }),
    ] {
        c.send_json(&request);
        c.expect_frame(&rejected("invalid link request"));
    }
    // The payload check comes before the version check: a bad username type with a bad version.
    c.send_json(&json!({ "type": "krmx/link", "payload": { "username": 1, "version": "9.9.9" } }));
    c.expect_frame(&rejected("invalid link request"));

    // Version: major.minor must match the server's (0.5), the patch may differ.
    for version in ["0.4.0", "0.6.0", "1.5.4", "", "0"] {
        c.send_text(&link_message("simon", version, None));
        c.expect_frame(&rejected(&format!("krmx server version mismatch (server=0.5.*,client={version})")));
    }
    // The version check comes before the username check.
    c.send_text(&link_message("!", "0.4.0", None));
    c.expect_frame(&rejected("krmx server version mismatch (server=0.5.*,client=0.4.0)"));

    // Username rule.
    for name in ["", "a", "1abc", "_abc", "abc_", "a..b", "a b", "ab!", "héllo", &"x".repeat(33)] {
        c.send_text(&link_message(name, CLIENT_VERSION, None));
        c.expect_frame(&rejected("invalid username"));
    }
    h.expect_no_event(Duration::from_millis(10));

    // Still open: a good request on the same socket links (another patch version is fine).
    c.send_text(&link_message("simon", "0.5.99", None));
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    h.expect_join_and_link("simon");

    // Already linked.
    let mut other = h.connect("other");
    other.send_link("simon");
    other.expect_frame(&rejected("user simon is already linked to a connection"));
    h.expect_no_event(Duration::from_millis(50));
    c.expect_silence(Duration::from_millis(10));
}

#[test]
fn invalid_messages_from_an_unlinked_connection_are_rejected_and_it_may_still_link() {
    let h = Harness::start(|_| {});
    let mut c = h.connect("unlinked");
    for text in ["", "true", "\"hello\"", "42", "null", "not-json", "{}", "{\"type\":3}", "{\"type\":{\"k\":\"v\"}}", "[]", "{\"payload\":{}}"] {
        c.send_text(text);
        c.expect_frame(&rejected("invalid message"));
    }
    c.send_binary(b"\xff\xfe not utf-8");
    c.expect_frame(&rejected("invalid message"));

    // Valid messages other than krmx/link: "unlinked connection", nothing reaches the host.
    for text in [r#"{"type":"chat","payload":"hi"}"#, r#"{"type":"krmx/unlink"}"#, r#"{"type":"krmx/leave"}"#, r#"{"type":"krmx/other"}"#] {
        c.send_text(text);
        c.expect_frame(&rejected("unlinked connection"));
    }
    h.expect_no_event(Duration::from_millis(50));

    c.link("simon");
    h.expect_join_and_link("simon");
}

#[test]
fn invalid_or_protocol_messages_from_a_linked_connection_unlink_it_and_the_socket_stays_open() {
    let h = Harness::start(|_| {});
    let mut watcher = h.linked("watcher");
    let mut simon = h.linked("simon");
    watcher.expect_frames(&[joined("simon"), linked("simon")]);

    let unlinking = ["", "true", "42", "not-json", "{}", r#"{"type":3}"#, r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4"}}"#, r#"{"type":"krmx/unlink"}"#, r#"{"type":"krmx/whatever"}"#];
    for text in unlinking {
        simon.send_text(text);
        simon.expect_frame(&unlinked("simon"));
        watcher.expect_frame(&unlinked("simon"));
        h.expect(ServerEvent::Unlink { username: user("simon") });
        assert_eq!(h.users(), vec![(user("watcher"), true), (user("simon"), false)], "after {text:?}");

        // The same socket links again (an existing user: no join).
        simon.send_link("simon");
        simon.expect_frames(&[accepted(), joined("watcher"), linked("watcher"), joined("simon"), linked("simon")]);
        watcher.expect_frame(&linked("simon"));
        h.expect(ServerEvent::Link { username: user("simon") });
    }
    h.expect_no_event(Duration::from_millis(10));
}

#[test]
fn binary_frames_holding_json_are_read_as_messages() {
    let h = Harness::start(|_| {});
    let mut c = h.connect("binary");
    c.send_binary(br#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4"}}"#);
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    h.expect_join_and_link("simon");

    c.send_binary(br#"{"type":"move","payload":{"x":1,"y":[2,3]}}"#);
    h.expect(ServerEvent::Message { username: user("simon"), message: msg("move", Some(json!({ "x": 1, "y": [2, 3] }))) });
}

// ----- messages -------------------------------------------------------------------------------

#[test]
fn custom_messages_reach_the_host_with_the_username() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    simon.send_text(r#"{"type":"chat","payload":{"text":"hello","n":[1,2.5,null,true]}}"#);
    h.expect(ServerEvent::Message {
        username: user("simon"),
        message: msg("chat", Some(json!({ "text": "hello", "n": [1, 2.5, null, true] }))),
    });
    // Without payload, with extra top-level fields (ignored), and a null payload.
    simon.send_text(r#"{"type":"ping","extra":1}"#);
    h.expect(ServerEvent::Message { username: user("simon"), message: msg("ping", None) });
    simon.send_text(r#"{"type":"nothing","payload":null}"#);
    h.expect(ServerEvent::Message { username: user("simon"), message: msg("nothing", Some(Value::Null)) });
    // Nothing went back to the client.
    simon.expect_silence(Duration::from_millis(50));
}

#[test]
fn send_broadcast_and_broadcast_with_skip() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    let mut lisa = h.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);
    h.server.join("bob").unwrap();
    h.expect(ServerEvent::Join { username: user("bob") });
    simon.expect_frame(&joined("bob"));
    lisa.expect_frame(&joined("bob"));

    h.server.send("lisa", &msg("secret", Some(json!({ "to": "lisa" })))).unwrap();
    lisa.expect_frame(r#"{"type":"secret","payload":{"to":"lisa"}}"#);

    h.server.broadcast(&msg("tick", Some(json!(1))), None).unwrap();
    simon.expect_frame(r#"{"type":"tick","payload":1}"#);
    lisa.expect_frame(r#"{"type":"tick","payload":1}"#);

    h.server.broadcast(&msg("tock", None), Some("simon")).unwrap();
    lisa.expect_frame(r#"{"type":"tock"}"#);
    // simon got neither the message to lisa nor the skipped broadcast.
    h.server.send("simon", &msg("marker", None)).unwrap();
    simon.expect_frame(r#"{"type":"marker"}"#);

    // Errors: unknown user, unlinked user.
    assert_eq!(h.server.send("ghost", &msg("x", None)).unwrap_err().kind, ErrorKind::UnknownUser);
    assert_eq!(h.server.send("bob", &msg("x", None)).unwrap_err().kind, ErrorKind::UserNotLinked);
    lisa.expect_silence(Duration::from_millis(50));
    simon.expect_silence(Duration::from_millis(10));
    h.expect_no_event(Duration::from_millis(10));
}

#[test]
fn sending_a_reserved_type_is_an_error() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    let reserved = Message::new("krmx/joined", Some(json!({ "username": "fake" })));
    assert_eq!(h.server.send("simon", &reserved).unwrap_err().kind, ErrorKind::ReservedType);
    assert_eq!(h.server.broadcast(&reserved, None).unwrap_err().kind, ErrorKind::ReservedType);
    assert_eq!(h.server.broadcast(&Message::new("krmx/", None), Some("simon")).unwrap_err().kind, ErrorKind::ReservedType);
    assert_eq!(Message::custom("krmx/x", None).unwrap_err(), krmx::proto::MessageError::ReservedType);
    simon.expect_silence(Duration::from_millis(50));
}

// ----- unlink and leave -------------------------------------------------------------------------

#[test]
fn host_unlink_keeps_the_socket_open_and_host_kick_makes_the_user_leave() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    let mut lisa = h.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);

    h.server.unlink("lisa").unwrap();
    lisa.expect_frame(&unlinked("lisa"));
    simon.expect_frame(&unlinked("lisa"));
    h.expect(ServerEvent::Unlink { username: user("lisa") });
    assert_eq!(h.server.unlink("lisa").unwrap_err().kind, ErrorKind::UserNotLinked);
    assert_eq!(h.server.unlink("ghost").unwrap_err().kind, ErrorKind::UnknownUser);

    // Relink on the same socket.
    lisa.send_link("lisa");
    lisa.expect_frames(&[accepted(), joined("simon"), linked("simon"), joined("lisa"), linked("lisa")]);
    simon.expect_frame(&linked("lisa"));
    h.expect(ServerEvent::Link { username: user("lisa") });

    // Kick a linked user: unlinked, then left (to the kicked connection, then to every linked one).
    h.server.kick("lisa").unwrap();
    lisa.expect_frames(&[unlinked("lisa"), left("lisa")]);
    simon.expect_frames(&[unlinked("lisa"), left("lisa")]);
    h.expect(ServerEvent::Unlink { username: user("lisa") });
    h.expect(ServerEvent::Leave { username: user("lisa") });
    assert_eq!(h.users(), vec![(user("simon"), true)]);

    // Kick an unlinked user: only left.
    h.server.join("bob").unwrap();
    h.expect(ServerEvent::Join { username: user("bob") });
    simon.expect_frame(&joined("bob"));
    h.server.kick("bob").unwrap();
    simon.expect_frame(&left("bob"));
    h.expect(ServerEvent::Leave { username: user("bob") });
    assert_eq!(h.server.kick("bob").unwrap_err().kind, ErrorKind::UnknownUser);

    // The kicked connection stays open and may link again, as a new user.
    lisa.send_link("lisa");
    lisa.expect_frames(&[accepted(), joined("simon"), linked("simon"), joined("lisa"), linked("lisa")]);
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);
    h.expect_join_and_link("lisa");
}

#[test]
fn client_leave_sends_unlinked_then_left() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    let mut lisa = h.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);

    lisa.send_text(r#"{"type":"krmx/leave"}"#);
    lisa.expect_frames(&[unlinked("lisa"), left("lisa")]);
    simon.expect_frames(&[unlinked("lisa"), left("lisa")]);
    h.expect(ServerEvent::Unlink { username: user("lisa") });
    h.expect(ServerEvent::Leave { username: user("lisa") });
    assert_eq!(h.users(), vec![(user("simon"), true)]);
    lisa.expect_silence(Duration::from_millis(50));

    // Still connected: an unlinked connection again.
    lisa.send_text(r#"{"type":"chat"}"#);
    lisa.expect_frame(&rejected("unlinked connection"));
}

#[test]
fn a_linked_socket_closing_unlinks_its_user_and_an_unlinked_one_closing_is_silent() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    let lisa = h.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);

    // Abrupt TCP close.
    lisa.drop_socket();
    h.expect(ServerEvent::Unlink { username: user("lisa") });
    simon.expect_frame(&unlinked("lisa"));
    assert_eq!(h.users(), vec![(user("simon"), true), (user("lisa"), false)]);

    // Polite WebSocket close.
    let mut bob = h.linked("bob");
    simon.expect_frames(&[joined("bob"), linked("bob")]);
    bob.close();
    h.expect(ServerEvent::Unlink { username: user("bob") });
    simon.expect_frame(&unlinked("bob"));

    // A connection that never linked: no event at all (step 8).
    let mut idle = h.connect("idle");
    idle.send_text("{}");
    idle.expect_frame(&rejected("invalid message"));
    idle.drop_socket();
    h.expect_no_event(Duration::from_millis(200));
    simon.expect_silence(Duration::from_millis(10));
}

#[test]
fn a_user_relinks_from_a_new_connection() {
    let h = Harness::start(|_| {});
    let mut watcher = h.linked("watcher");
    let first = h.linked("simon");
    watcher.expect_frames(&[joined("simon"), linked("simon")]);

    // While the first connection is linked, a second one cannot link as simon.
    let mut second = h.connect("second");
    second.send_link("simon");
    second.expect_frame(&rejected("user simon is already linked to a connection"));

    first.drop_socket();
    h.expect(ServerEvent::Unlink { username: user("simon") });
    watcher.expect_frame(&unlinked("simon"));

    second.send_link("simon");
    second.expect_frames(&[accepted(), joined("watcher"), linked("watcher"), joined("simon"), linked("simon")]);
    watcher.expect_frame(&linked("simon"));
    h.expect(ServerEvent::Link { username: user("simon") });
    second.send_text(r#"{"type":"hi"}"#);
    h.expect(ServerEvent::Message { username: user("simon"), message: msg("hi", None) });
}

// ----- configuration --------------------------------------------------------------------------

#[test]
fn a_server_not_accepting_new_users_links_only_joined_users() {
    let h = Harness::start(|c| c.accept_new_users = false);
    let mut c = h.connect("c");
    c.send_link("simon");
    c.expect_frame(&rejected("server is not accepting new users"));
    h.expect_no_event(Duration::from_millis(50));

    h.server.join("simon").unwrap();
    h.expect(ServerEvent::Join { username: user("simon") });
    assert_eq!(h.server.join("simon").unwrap_err().kind, ErrorKind::UserExists);
    assert_eq!(h.server.join("9no").unwrap_err().kind, ErrorKind::InvalidUsername);
    c.send_link("simon");
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    h.expect(ServerEvent::Link { username: user("simon") });

    // The rule still refuses other new users.
    let mut lisa = h.connect("lisa");
    lisa.send_link("lisa");
    lisa.expect_frame(&rejected("server is not accepting new users"));
}

#[test]
fn authentication_accept() {
    let h = Harness::start(|c| c.authenticate = true);
    let mut c = h.connect("simon");
    c.send_text(&link_message("simon", CLIENT_VERSION, Some("secret")));
    let ServerEvent::Authenticate { request_id, username, is_new_user, auth } = h.next_event() else {
        panic!("expected an Authenticate event");
    };
    assert_eq!((username.as_str(), is_new_user, auth.as_deref()), ("simon", true, Some("secret")));
    c.expect_silence(Duration::from_millis(50));
    // A second link while the first is pending.
    c.send_link("simon");
    c.expect_frame(&rejected("a link request of this connection is already pending"));

    h.server.authenticate(request_id, Ok(())).unwrap();
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    h.expect_join_and_link("simon");
    assert_eq!(h.server.authenticate(request_id, Ok(())).unwrap_err().kind, ErrorKind::UnknownRequest);

    // An existing user relinking: is_new_user false, no auth.
    h.server.unlink("simon").unwrap();
    c.expect_frame(&unlinked("simon"));
    h.expect(ServerEvent::Unlink { username: user("simon") });
    c.send_link("simon");
    let ServerEvent::Authenticate { request_id, username, is_new_user, auth } = h.next_event() else {
        panic!("expected an Authenticate event");
    };
    assert_eq!((username.as_str(), is_new_user, auth), ("simon", false, None));
    h.server.authenticate(request_id, Ok(())).unwrap();
    c.expect_frames(&[accepted(), joined("simon"), linked("simon")]);
    h.expect(ServerEvent::Link { username: user("simon") });
}

#[test]
fn authentication_reject_with_and_without_reason() {
    let h = Harness::start(|c| c.authenticate = true);
    let mut c = h.connect("c");
    for (decision, reason) in [(Some("wrong password"), "wrong password"), (None, "authentication failed")] {
        c.send_text(&link_message("simon", CLIENT_VERSION, Some("guess")));
        let ServerEvent::Authenticate { request_id, .. } = h.next_event() else {
            panic!("expected an Authenticate event");
        };
        h.server.authenticate(request_id, Err(decision.map(str::to_string))).unwrap();
        c.expect_frame(&rejected(reason));
    }
    h.expect_no_event(Duration::from_millis(50));
    assert!(h.users().is_empty());
}

#[test]
fn authentication_times_out() {
    let h = Harness::start(|c| {
        c.authenticate = true;
        c.auth_timeout = Duration::from_millis(300);
    });
    let mut c = h.connect("c");
    let asked = Instant::now();
    c.send_link("simon");
    let ServerEvent::Authenticate { request_id, .. } = h.next_event() else {
        panic!("expected an Authenticate event");
    };
    c.expect_frame(&rejected("authentication timeout"));
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(250), "rejected after {waited:?}, before the 300 ms timeout");
    assert_eq!(h.server.authenticate(request_id, Ok(())).unwrap_err().kind, ErrorKind::UnknownRequest);
    c.expect_silence(Duration::from_millis(50));
    assert!(h.users().is_empty());
}

#[test]
fn liveness_pings_close_a_silent_client_and_keep_an_answering_one() {
    let h = Harness::start(|c| c.ping_interval = Some(Duration::from_millis(200)));
    let mut answering = h.linked("answering");
    // Links (reading its socket meanwhile), then never reads again: it never answers a ping.
    let mut silent = h.linked("silent");

    let started = Instant::now();
    // The answering client reads (and answers pings) all along.
    answering.expect_frames(&[joined("silent"), linked("silent"), unlinked("silent")]);
    h.expect(ServerEvent::Unlink { username: user("silent") });
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "the silent client was dropped only after {elapsed:?}");

    // The silent client's socket was closed by the server (it reads the close only now).
    let close = silent.expect_closed().expect("a close frame");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Away, "ping timeout"));

    // The answering client stays linked over several more intervals.
    answering.expect_silence(Duration::from_millis(1000));
    h.expect_no_event(Duration::from_millis(10));
    assert_eq!(h.users(), vec![(user("answering"), true), (user("silent"), false)]);
    answering.send_text(r#"{"type":"still-here"}"#);
    h.expect(ServerEvent::Message { username: user("answering"), message: msg("still-here", None) });
}

#[test]
fn path_and_query_requirements_are_checked_on_the_handshake() {
    let h = Harness::start(|c| {
        c.path = Some("/game".into());
        c.query = vec![
            ("krmx".into(), QueryRequirement::Equals("1".into())),
            ("token".into(), QueryRequirement::Present),
            ("debug".into(), QueryRequirement::Absent),
        ];
    });
    assert_eq!(handshake_status(&h.url_with("/?krmx=1&token=a")), 404);
    assert_eq!(handshake_status(&h.url_with("/other?krmx=1&token=a")), 404);
    assert_eq!(handshake_status(&h.url_with("/game")), 400);
    assert_eq!(handshake_status(&h.url_with("/game?krmx=1")), 400);
    assert_eq!(handshake_status(&h.url_with("/game?krmx=2&token=a")), 400);
    assert_eq!(handshake_status(&h.url_with("/game?krmx=1&token=a&debug=0")), 400);
    assert_eq!(handshake_status(&h.url_with("/game?krmx=1&token=a&debug")), 400);
    h.expect_no_event(Duration::from_millis(50));

    let mut ok = connect(&h.url_with("/game?krmx=1&token=a")).labelled("ok");
    ok.link("simon");
    h.expect_join_and_link("simon");
    let mut ok2 = connect(&h.url_with("/game?token=&x=y&krmx=1")).labelled("ok2");
    ok2.link("lisa");
    h.expect_join_and_link("lisa");
}

#[test]
fn an_oversized_frame_closes_only_that_connection_with_1009() {
    let h = Harness::start(|_| {});
    let mut calm = h.linked("calm");
    let mut big = h.linked("big");
    calm.expect_frames(&[joined("big"), linked("big")]);

    // A 4 MiB binary frame, written raw on another thread (the server stops reading it after
    // the header, so the write blocks or fails) while this thread reads the server's answer.
    let mut raw = big.tcp().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let len: u64 = 4 << 20;
        let mut header = vec![0x82u8, 0x80 | 127];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: the payload goes as is
        let _ = raw.write_all(&header);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(len / chunk.len() as u64) {
            if raw.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let close = big.expect_closed();
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Size, "close frame {close:?}");
    h.expect(ServerEvent::Unlink { username: user("big") });
    calm.expect_frame(&unlinked("big"));
    writer.join().unwrap();

    h.server.broadcast(&msg("still", Some(json!("alive"))), None).unwrap();
    calm.expect_frame(r#"{"type":"still","payload":"alive"}"#);
    calm.send_text(r#"{"type":"pong"}"#);
    h.expect(ServerEvent::Message { username: user("calm"), message: msg("pong", None) });
}

#[test]
fn garbage_on_the_tcp_port_does_not_disturb_the_server() {
    let h = Harness::start(|c| c.handshake_timeout = Duration::from_millis(300));
    let mut simon = h.linked("simon");

    // Not HTTP at all: dropped.
    let mut garbage = send_raw_bytes(h.port, b"\x00\x01\x02\xff\xfegarbage\r\n\r\n\x16\x03\x01");
    read_until_eof(&mut garbage);
    // HTTP, but no WebSocket upgrade: refused.
    let mut http = send_raw_bytes(h.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    read_until_eof(&mut http);
    // A TLS client hello.
    let mut tls = send_raw_bytes(h.port, &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]);
    read_until_eof(&mut tls);
    // Connected, but never completes the handshake: dropped after the handshake timeout.
    let mut mute = send_raw_bytes(h.port, b"");
    read_until_eof(&mut mute);

    h.expect_no_event(Duration::from_millis(50));
    h.server.broadcast(&msg("ok", None), None).unwrap();
    simon.expect_frame(r#"{"type":"ok"}"#);
    let _lisa = h.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);
}

// ----- lifecycle ------------------------------------------------------------------------------

#[test]
fn close_makes_every_user_leave_then_closes_every_socket() {
    let h = Harness::start(|_| {});
    let mut simon = h.linked("simon");
    let mut lisa = h.linked("lisa");
    simon.expect_frames(&[joined("lisa"), linked("lisa")]);
    h.server.join("bob").unwrap();
    h.expect(ServerEvent::Join { username: user("bob") });
    simon.expect_frame(&joined("bob"));
    lisa.expect_frame(&joined("bob"));
    let mut unlinked_conn = h.connect("unlinked");

    h.server.close().unwrap();
    assert_eq!(h.server.status(), ServerStatus::Closing);
    assert_eq!(h.server.close().unwrap_err().kind, ErrorKind::WrongStatus);

    // Users leave in join order; a user that has left is no longer linked and hears no more.
    let (frames, close) = simon.recv_until_closed();
    assert_eq!(frames, vec![unlinked("simon"), left("simon")]);
    assert!(close.is_some(), "simon's socket ended without a close frame");
    let (frames, close) = lisa.recv_until_closed();
    assert_eq!(frames, vec![unlinked("simon"), left("simon"), unlinked("lisa"), left("lisa")]);
    assert!(close.is_some(), "lisa's socket ended without a close frame");
    let (frames, _) = unlinked_conn.recv_until_closed();
    assert!(frames.is_empty(), "{frames:?}");

    h.expect(ServerEvent::Unlink { username: user("simon") });
    h.expect(ServerEvent::Leave { username: user("simon") });
    h.expect(ServerEvent::Unlink { username: user("lisa") });
    h.expect(ServerEvent::Leave { username: user("lisa") });
    h.expect(ServerEvent::Leave { username: user("bob") });
    h.expect(ServerEvent::Close);
    assert_eq!(h.server.status(), ServerStatus::Closed);
    assert!(h.users().is_empty());

    // The port is released: nothing accepts connections any more.
    assert!(try_connect(&h.url()).is_err());
}

#[test]
fn listen_on_a_taken_port_is_an_io_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = Server::new(ServerConfig::default());
    let error = server.listen(port).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Io, "{error}");
    assert!(error.message.contains(&port.to_string()), "{error}");
    assert_eq!(server.poll(Some(Duration::from_millis(10))), None);
}

/// A host that queues work for itself and then wakes its polling thread (as `krmx serve` does
/// with stdin commands) must not lose the wake when it lands just before `poll` blocks.
#[test]
fn a_wake_sent_before_poll_blocks_is_not_lost() {
    let server = Server::new(ServerConfig::default());
    let port = server.listen(0).unwrap();
    assert_eq!(server.poll(Some(TIMEOUT)), Some(ServerEvent::Listen { port }));

    server.waker().wake();
    let started = Instant::now();
    let event = server.poll(Some(Duration::from_secs(2)));
    let waited = started.elapsed();
    assert_eq!(event, None);
    assert!(
        waited < Duration::from_millis(500),
        "BUG: Server::poll swallowed a pending wake (its first phase drops NetEvent::Wake from the inbox) \
         and blocked for {waited:?}; with poll(None) it would block until network input arrives"
    );
}

#[test]
fn a_slow_reader_is_disconnected_and_everyone_else_keeps_receiving() {
    let h = Harness::start(|c| {
        c.ping_interval = None;
        c.max_queued_bytes = 64 * 1024;
    });
    let mut reader = h.linked("reader");
    let mut slow = h.linked("slow");
    reader.expect_frames(&[joined("slow"), linked("slow")]);
    // `slow` never reads: the kernel's socket buffers fill, then its queue passes 64 KiB.
    let chunk = Message::new("bulk/data", Some(json!("x".repeat(8 * 1024))));
    let expected = frame("bulk/data", Some(json!("x".repeat(8 * 1024))));
    let started = Instant::now();
    let mut delivered = 0;
    // `reader` keeps receiving every frame until it is told that `slow` was unlinked.
    loop {
        h.server.send("slow", &chunk).ok();
        h.server.send("reader", &chunk).unwrap();
        let text = reader.recv_text();
        if text == unlinked("slow") {
            break;
        }
        assert!(text == expected, "unexpected frame of {} bytes: {:.80}", text.len(), text);
        delivered += 1;
        assert!(started.elapsed() < Duration::from_secs(20), "the slow reader was never disconnected");
    }
    assert!(delivered > 8, "the queue limit is on bytes queued beyond what the socket took");
    h.expect(ServerEvent::Unlink { username: "slow".into() });
    assert_eq!(h.users(), [("reader".to_string(), true), ("slow".to_string(), false)]);
    // Its socket was closed by the server: after the queued data, the stream ends.
    let (_frames, close) = slow.recv_until_closed();
    if let Some(close) = close {
        assert_eq!(close.code, CloseCode::Policy);
    }
}

#[test]
fn a_host_that_stops_polling_makes_the_server_stop_reading_and_loses_nothing() {
    let server = Server::new(ServerConfig { ping_interval: None, event_queue_bytes: 64 * 1024, ..Default::default() });
    let port = server.listen(0).unwrap();
    assert_eq!(server.poll(Some(TIMEOUT)), Some(ServerEvent::Listen { port }));
    let mut client = connect(&format!("ws://127.0.0.1:{port}/"));
    client.send_link("flood");
    assert_eq!(server.poll(Some(TIMEOUT)), Some(ServerEvent::Join { username: "flood".into() }));
    assert_eq!(server.poll(Some(TIMEOUT)), Some(ServerEvent::Link { username: "flood".into() }));
    // 16 MiB of messages, far more than the 64 KiB queue and the sockets' buffers: the client's
    // writes block while the host is not polling, and resume as it drains.
    const COUNT: usize = 16 * 1024;
    let filler = "y".repeat(1000);
    let sender = std::thread::spawn(move || {
        for i in 0..COUNT {
            client.send_json(&json!({ "type": "flood/n", "payload": [i, filler] }));
        }
        client
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!sender.is_finished(), "the client could write everything while the host was not polling");
    for i in 0..COUNT {
        match server.poll(Some(TIMEOUT)) {
            Some(ServerEvent::Message { username, message }) => {
                assert_eq!(username, "flood");
                assert_eq!(message.payload.as_ref().and_then(|p| p[0].as_u64()), Some(i as u64), "message {i} out of order");
            }
            other => panic!("message {i}: expected a message, got {other:?}"),
        }
    }
    let _client = sender.join().unwrap();
    assert_eq!(server.poll(Some(Duration::from_millis(50))), None);
}
