//! Table-driven tests of the server state machine, one group per numbered step of PROTOCOL.md.

use super::*;
use serde_json::json;

/// Drives a core and renders its outputs as lines: `3 <- {json}`, `close 3`, `event link simon`.
struct Harness {
    core: ServerCore,
    now: Instant,
}

fn render(output: Output) -> String {
    match output {
        Output::Send { to, frame } => format!("{to} <- {}", String::from_utf8(frame.to_vec()).unwrap()),
        Output::Close { connection, reason: "" } => format!("close {connection}"),
        Output::Close { connection, reason } => format!("close {connection} ({reason})"),
        Output::Event(event) => match event {
            ServerEvent::Listen { port } => format!("event listen {port}"),
            ServerEvent::Authenticate { request_id, username, is_new_user, auth } => {
                format!("event authenticate {request_id} {username} new={is_new_user} auth={auth:?}")
            }
            ServerEvent::Join { username } => format!("event join {username}"),
            ServerEvent::Link { username } => format!("event link {username}"),
            ServerEvent::Unlink { username } => format!("event unlink {username}"),
            ServerEvent::Leave { username } => format!("event leave {username}"),
            ServerEvent::Message { username, message } => {
                format!("event message {username} {}", String::from_utf8(message.to_frame().to_vec()).unwrap())
            }
            ServerEvent::Close => "event close".to_string(),
        },
    }
}

fn link_frame(username: &str) -> String {
    format!(r#"{{"type":"krmx/link","payload":{{"username":"{username}","version":"0.5.4"}}}}"#)
}

fn joined(u: &str) -> String {
    format!(r#"{{"type":"krmx/joined","payload":{{"username":"{u}"}}}}"#)
}
fn linked(u: &str) -> String {
    format!(r#"{{"type":"krmx/linked","payload":{{"username":"{u}"}}}}"#)
}
fn unlinked(u: &str) -> String {
    format!(r#"{{"type":"krmx/unlinked","payload":{{"username":"{u}"}}}}"#)
}
fn left(u: &str) -> String {
    format!(r#"{{"type":"krmx/left","payload":{{"username":"{u}"}}}}"#)
}
fn rejected(reason: &str) -> String {
    format!(r#"{{"type":"krmx/rejected","payload":{{"reason":"{reason}"}}}}"#)
}
const ACCEPTED: &str = r#"{"type":"krmx/accepted"}"#;

impl Harness {
    fn new() -> Self {
        Harness::with(ServerCoreConfig::default())
    }

    fn with(config: ServerCoreConfig) -> Self {
        let mut core = ServerCore::new(config);
        core.starting().unwrap();
        core.listening(8082);
        let mut harness = Harness { core, now: Instant::now() };
        assert_eq!(harness.outputs(), ["event listen 8082"]);
        harness
    }

    fn outputs(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.core.poll_output()).map(render).collect()
    }

    fn frame(&mut self, connection: ConnectionId, frame: &str) -> Vec<String> {
        self.core.frame(connection, frame.as_bytes(), self.now);
        self.outputs()
    }

    fn open(&mut self, connection: ConnectionId) {
        self.core.connection_opened(connection);
        assert_eq!(self.outputs(), Vec::<String>::new());
    }

    /// Opens `connection` and links it as `username`, discarding the outputs.
    fn linked(&mut self, connection: ConnectionId, username: &str) {
        self.open(connection);
        let out = self.frame(connection, &link_frame(username));
        assert!(out.contains(&format!("event link {username}")), "{out:?}");
    }

    fn users(&self) -> Vec<(String, bool)> {
        self.core.users().map(|(n, l)| (n.to_string(), l)).collect()
    }
}

fn lines(expected: &[String]) -> Vec<String> {
    expected.to_vec()
}

#[test]
fn step1_invalid_messages_from_an_unlinked_connection_are_rejected() {
    let mut h = Harness::new();
    h.open(1);
    for frame in ["", "true", "\"hello\"", "42", "null", "not-json", "{}", "{\"type\":3}", "{\"type\":{\"k\":\"v\"}}"] {
        assert_eq!(h.frame(1, frame), [format!("1 <- {}", rejected("invalid message"))], "frame {frame:?}");
    }
    // The socket stays usable: it can still link.
    assert!(h.frame(1, &link_frame("simon")).contains(&"event link simon".to_string()));
}

#[test]
fn step1_invalid_messages_from_a_linked_connection_unlink_it() {
    for frame in ["", "true", "not-json", "{}", "{\"type\":3}"] {
        let mut h = Harness::new();
        h.linked(1, "simon");
        h.linked(2, "lisa");
        assert_eq!(
            h.frame(2, frame),
            lines(&[format!("1 <- {}", unlinked("lisa")), format!("2 <- {}", unlinked("lisa")), "event unlink lisa".into()]),
            "frame {frame:?}"
        );
        assert_eq!(h.users(), [("simon".into(), true), ("lisa".into(), false)]);
    }
}

#[test]
fn step2_an_unlinked_connection_may_only_link() {
    let mut h = Harness::new();
    h.open(1);
    for frame in [r#"{"type":"custom/hello"}"#, r#"{"type":"krmx/unlink"}"#, r#"{"type":"krmx/leave"}"#, r#"{"type":"krmx/other"}"#] {
        assert_eq!(h.frame(1, frame), [format!("1 <- {}", rejected("unlinked connection"))], "{frame}");
    }
}

#[test]
fn step3_link_requests_are_checked_in_order() {
    let cases: &[(&str, &str)] = &[
        (r#"{"type":"krmx/link"}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":"simon"}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":null}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":{"version":"0.5.4"}}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":{"username":3,"version":"0.5.4"}}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":{"username":"simon"}}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":{"username":"simon","version":5}}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4","auth":null}}"#, "invalid link request"),
        (r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4","auth":1}}"#, "invalid link request"),
        // version before username: a bad username with a bad version reports the version
        (r#"{"type":"krmx/link","payload":{"username":"!","version":"0.4.1"}}"#, "krmx server version mismatch (server=0.5.*,client=0.4.1)"),
        (r#"{"type":"krmx/link","payload":{"username":"!","version":"0.5.4"}}"#, "invalid username"),
        (r#"{"type":"krmx/link","payload":{"username":"a","version":"0.5.4"}}"#, "invalid username"),
        (r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4"}}"#, "user simon is already linked to a connection"),
    ];
    let mut h = Harness::new();
    h.linked(1, "simon");
    h.open(2);
    for (frame, reason) in cases {
        assert_eq!(h.frame(2, frame), [format!("2 <- {}", rejected(reason))], "{frame}");
    }
    assert_eq!(h.core.connection_count(), 2);
}

#[test]
fn step3_a_server_that_accepts_no_new_users_still_links_known_ones() {
    let mut h = Harness::with(ServerCoreConfig { accept_new_users: false, ..Default::default() });
    h.open(1);
    assert_eq!(h.frame(1, &link_frame("simon")), [format!("1 <- {}", rejected("server is not accepting new users"))]);
    h.core.join("simon").unwrap();
    assert_eq!(h.outputs(), ["event join simon"]);
    let out = h.frame(1, &link_frame("simon"));
    assert_eq!(out[0], format!("1 <- {ACCEPTED}"));
    assert_eq!(out.last().unwrap(), "event link simon");
}

#[test]
fn step3_a_custom_username_rule_replaces_the_default() {
    let rule: UsernameRule = Box::new(|u: &str| u.starts_with("bot-"));
    let mut h = Harness::with(ServerCoreConfig { username_rule: Some(rule), ..Default::default() });
    h.open(1);
    assert_eq!(h.frame(1, &link_frame("simon")), [format!("1 <- {}", rejected("invalid username"))]);
    assert!(h.frame(1, &link_frame("bot-1")).contains(&"event link bot-1".to_string()));
    assert_eq!(h.core.join("simon"), Err(ActionError::InvalidUsername("simon".into())));
}

#[test]
fn step3_the_version_is_configurable() {
    let mut h = Harness::with(ServerCoreConfig { protocol_version: "0.6.2".into(), ..Default::default() });
    h.open(1);
    assert_eq!(
        h.frame(1, &link_frame("simon")),
        [format!("1 <- {}", rejected("krmx server version mismatch (server=0.6.*,client=0.5.4)"))]
    );
    let frame = r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.6.0"}}"#;
    assert!(h.frame(1, frame).contains(&"event link simon".to_string()));
}

#[test]
fn step4_the_order_of_messages_on_link() {
    let mut h = Harness::new();
    h.open(1);
    assert_eq!(
        h.frame(1, &link_frame("simon")),
        lines(&[
            format!("1 <- {ACCEPTED}"),
            "event join simon".into(),
            format!("1 <- {}", joined("simon")),
            format!("1 <- {}", linked("simon")),
            "event link simon".into(),
        ])
    );
    h.core.join("lisa").unwrap();
    assert_eq!(h.outputs(), [format!("1 <- {}", joined("lisa")), "event join lisa".into()]);
    h.open(2);
    assert_eq!(
        h.frame(2, &link_frame("marco")),
        lines(&[
            format!("2 <- {ACCEPTED}"),
            format!("1 <- {}", joined("marco")),
            "event join marco".into(),
            format!("2 <- {}", joined("simon")),
            format!("2 <- {}", linked("simon")),
            format!("2 <- {}", joined("lisa")),
            format!("2 <- {}", joined("marco")),
            format!("2 <- {}", linked("marco")),
            format!("1 <- {}", linked("marco")),
            "event link marco".into(),
        ])
    );
    // An existing (unlinked) user links: no join.
    h.open(3);
    assert_eq!(
        h.frame(3, &link_frame("lisa")),
        lines(&[
            format!("3 <- {ACCEPTED}"),
            format!("3 <- {}", joined("simon")),
            format!("3 <- {}", linked("simon")),
            format!("3 <- {}", joined("lisa")),
            format!("3 <- {}", linked("lisa")),
            format!("3 <- {}", joined("marco")),
            format!("3 <- {}", linked("marco")),
            format!("1 <- {}", linked("lisa")),
            format!("2 <- {}", linked("lisa")),
            "event link lisa".into(),
        ])
    );
    assert_eq!(h.users(), [("simon".into(), true), ("lisa".into(), true), ("marco".into(), true)]);
}

#[test]
fn step5_messages_from_a_linked_connection() {
    let mut h = Harness::new();
    h.linked(1, "simon");
    assert_eq!(
        h.frame(1, r#"{"type":"game/move","payload":{"x":1},"extra":true}"#),
        [r#"event message simon {"type":"game/move","payload":{"x":1}}"#]
    );
    assert_eq!(h.frame(1, r#"{"type":"game/pass"}"#), [r#"event message simon {"type":"game/pass"}"#]);
    // Binary frames holding UTF-8 JSON are the same thing.
    h.core.frame(1, br#"{"type":"game/bin"}"#, h.now);
    assert_eq!(h.outputs(), [r#"event message simon {"type":"game/bin"}"#]);
    for frame in [link_frame("simon").as_str(), r#"{"type":"krmx/unlink"}"#, r#"{"type":"krmx/whatever"}"#] {
        assert_eq!(
            h.frame(1, frame),
            lines(&[format!("1 <- {}", unlinked("simon")), "event unlink simon".into()]),
            "{frame}"
        );
        assert!(h.frame(1, &link_frame("simon")).contains(&"event link simon".to_string()));
    }
}

#[test]
fn step6_unlink_goes_to_every_linked_connection_including_its_own() {
    let mut h = Harness::new();
    h.linked(1, "simon");
    h.linked(2, "lisa");
    assert_eq!(
        h.frame(1, r#"{"type":"krmx/unlink"}"#),
        lines(&[format!("1 <- {}", unlinked("simon")), format!("2 <- {}", unlinked("simon")), "event unlink simon".into()])
    );
    // The socket stays open; messages are now those of an unlinked connection.
    assert_eq!(h.frame(1, r#"{"type":"a"}"#), [format!("1 <- {}", rejected("unlinked connection"))]);
    // Closing a linked socket unlinks too.
    h.core.connection_closed(2);
    assert_eq!(h.outputs(), [format!("2 <- {}", unlinked("lisa")), "event unlink lisa".into()]);
    assert_eq!(h.users(), [("simon".into(), false), ("lisa".into(), false)]);
    // The host unlinks.
    h.linked(3, "lisa");
    assert_eq!(h.core.unlink("simon"), Err(ActionError::UserNotLinked("simon".into())));
    assert_eq!(h.core.unlink("nobody"), Err(ActionError::UnknownUser("nobody".into())));
    h.core.unlink("lisa").unwrap();
    assert_eq!(h.outputs(), [format!("3 <- {}", unlinked("lisa")), "event unlink lisa".into()]);
}

#[test]
fn step7_leave_and_kick() {
    let mut h = Harness::new();
    h.linked(1, "simon");
    h.linked(2, "lisa");
    assert_eq!(
        h.frame(2, r#"{"type":"krmx/leave"}"#),
        lines(&[
            format!("1 <- {}", unlinked("lisa")),
            format!("2 <- {}", unlinked("lisa")),
            "event unlink lisa".into(),
            format!("2 <- {}", left("lisa")),
            format!("1 <- {}", left("lisa")),
            "event leave lisa".into(),
        ])
    );
    assert_eq!(h.users(), [("simon".into(), true)]);
    h.core.join("ghost").unwrap();
    h.outputs();
    h.core.kick("ghost").unwrap();
    assert_eq!(h.outputs(), [format!("1 <- {}", left("ghost")), "event leave ghost".into()]);
    h.core.kick("simon").unwrap();
    assert_eq!(
        h.outputs(),
        lines(&[
            format!("1 <- {}", unlinked("simon")),
            "event unlink simon".into(),
            format!("1 <- {}", left("simon")),
            "event leave simon".into(),
        ])
    );
    assert_eq!(h.core.kick("simon"), Err(ActionError::UnknownUser("simon".into())));
    assert!(h.users().is_empty());
}

#[test]
fn step8_a_connection_closing_before_linking_produces_nothing() {
    let mut h = Harness::new();
    h.open(1);
    h.core.connection_closed(1);
    assert_eq!(h.outputs(), Vec::<String>::new());
    assert_eq!(h.core.connection_count(), 0);
    // Frames of an unknown connection are ignored.
    assert_eq!(h.frame(1, &link_frame("simon")), Vec::<String>::new());
}

#[test]
fn step9_send_broadcast_join_and_their_errors() {
    let mut h = Harness::new();
    h.linked(1, "simon");
    h.linked(2, "lisa");
    h.core.join("marco").unwrap();
    h.outputs();
    let message = Message::new("chat/said", Some(json!("hi")));
    h.core.broadcast(&message, None).unwrap();
    let frame = r#"{"type":"chat/said","payload":"hi"}"#;
    assert_eq!(h.outputs(), [format!("1 <- {frame}"), format!("2 <- {frame}")]);
    h.core.broadcast(&message, Some("simon")).unwrap();
    assert_eq!(h.outputs(), [format!("2 <- {frame}")]);
    h.core.send("lisa", &message).unwrap();
    assert_eq!(h.outputs(), [format!("2 <- {frame}")]);
    assert_eq!(h.core.send("marco", &message), Err(ActionError::UserNotLinked("marco".into())));
    assert_eq!(h.core.send("nobody", &message), Err(ActionError::UnknownUser("nobody".into())));
    let reserved = Message::new("krmx/joined", None);
    assert_eq!(h.core.send("lisa", &reserved), Err(ActionError::ReservedType));
    assert_eq!(h.core.broadcast(&reserved, None), Err(ActionError::ReservedType));
    assert_eq!(h.core.join("marco"), Err(ActionError::UserExists("marco".into())));
    assert_eq!(h.core.join("9lives"), Err(ActionError::InvalidUsername("9lives".into())));
    assert_eq!(h.outputs(), Vec::<String>::new());
}

#[test]
fn step9_status_lifecycle_and_close() {
    let mut core = ServerCore::new(ServerCoreConfig::default());
    assert_eq!(core.status(), ServerStatus::Initializing);
    let m = Message::new("a", None);
    assert_eq!(
        core.broadcast(&m, None),
        Err(ActionError::WrongStatus { action: "broadcast a message", status: ServerStatus::Initializing })
    );
    assert_eq!(
        core.join("simon").unwrap_err().to_string(),
        "cannot join a user when the server is initializing"
    );
    assert!(core.begin_close().is_err());
    core.starting().unwrap();
    assert!(core.starting().is_err());
    core.listen_failed();
    assert_eq!(core.status(), ServerStatus::Initializing);
    core.starting().unwrap();
    core.listening(1);
    let mut h = Harness { core, now: Instant::now() };
    h.outputs();
    h.linked(1, "simon");
    h.linked(2, "lisa");
    h.core.join("marco").unwrap();
    h.outputs();
    h.open(3);
    h.core.begin_close().unwrap();
    assert_eq!(h.core.status(), ServerStatus::Closing);
    assert_eq!(
        h.outputs(),
        lines(&[
            format!("1 <- {}", unlinked("simon")),
            format!("2 <- {}", unlinked("simon")),
            "event unlink simon".into(),
            format!("1 <- {}", left("simon")),
            format!("2 <- {}", left("simon")),
            "event leave simon".into(),
            format!("2 <- {}", unlinked("lisa")),
            "event unlink lisa".into(),
            format!("2 <- {}", left("lisa")),
            "event leave lisa".into(),
            "event leave marco".into(),
            "close 1".into(),
            "close 2".into(),
            "close 3".into(),
        ])
    );
    // While closing, frames are ignored and new connections are refused.
    assert_eq!(h.frame(3, &link_frame("simon")), Vec::<String>::new());
    h.core.connection_opened(4);
    assert_eq!(h.outputs(), ["close 4"]);
    assert_eq!(h.core.join("x1").unwrap_err().to_string(), "cannot join a user when the server is closing");
    h.core.closed();
    assert_eq!(h.outputs(), ["event close"]);
    assert_eq!(h.core.status(), ServerStatus::Closed);
    h.core.closed();
    assert_eq!(h.outputs(), Vec::<String>::new());
}

#[test]
fn step3_authentication_by_the_host() {
    let config = ServerCoreConfig { authenticate: true, ..Default::default() };
    let mut h = Harness::with(config);
    h.open(1);
    let frame = r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4","auth":"secret"}}"#;
    assert_eq!(h.frame(1, frame), [r#"event authenticate 1 simon new=true auth=Some("secret")"#]);
    // Nothing else while pending; a second link from the same connection is refused.
    assert_eq!(h.frame(1, frame), [format!("1 <- {}", rejected("a link request of this connection is already pending"))]);
    h.core.authenticate(1, Ok(())).unwrap();
    let out = h.outputs();
    assert_eq!(out[0], format!("1 <- {ACCEPTED}"));
    assert_eq!(out.last().unwrap(), "event link simon");
    assert_eq!(h.core.authenticate(1, Ok(())), Err(ActionError::UnknownRequest(1)));

    // Rejection with and without a reason.
    h.open(2);
    assert_eq!(h.frame(2, &link_frame("lisa")), ["event authenticate 2 lisa new=true auth=None"]);
    h.core.authenticate(2, Err(Some("server is full".into()))).unwrap();
    assert_eq!(h.outputs(), [format!("2 <- {}", rejected("server is full"))]);
    h.frame(2, &link_frame("lisa"));
    h.core.authenticate(3, Err(None)).unwrap();
    assert_eq!(h.outputs(), [format!("2 <- {}", rejected("authentication failed"))]);
}

#[test]
fn step3_authentication_times_out_and_rechecks_on_accept() {
    let config = ServerCoreConfig { authenticate: true, auth_timeout: Duration::from_secs(10), ..Default::default() };
    let mut h = Harness::with(config);
    let start = h.now;
    h.open(1);
    h.open(2);
    assert_eq!(h.frame(1, &link_frame("simon")), ["event authenticate 1 simon new=true auth=None"]);
    h.now = start + Duration::from_secs(5);
    assert_eq!(h.frame(2, &link_frame("simon")), ["event authenticate 2 simon new=true auth=None"]);
    assert_eq!(h.core.next_deadline(), Some(start + Duration::from_secs(10)));
    h.core.tick(start + Duration::from_millis(9_999));
    assert_eq!(h.outputs(), Vec::<String>::new());
    h.core.tick(start + Duration::from_secs(10));
    assert_eq!(h.outputs(), [format!("1 <- {}", rejected("authentication timeout"))]);
    assert_eq!(h.core.authenticate(1, Ok(())), Err(ActionError::UnknownRequest(1)));
    // Connection 2 is accepted; a third connection asking for the same user while 2 was pending
    // is rechecked at accept time.
    h.open(3);
    assert_eq!(h.frame(3, &link_frame("simon")), ["event authenticate 3 simon new=true auth=None"]);
    h.core.authenticate(2, Ok(())).unwrap();
    assert!(h.outputs().contains(&"event link simon".to_string()));
    h.core.authenticate(3, Ok(())).unwrap();
    assert_eq!(h.outputs(), [format!("3 <- {}", rejected("user simon is already linked to a connection"))]);
    // A pending request dies with its connection.
    h.open(4);
    h.frame(4, &link_frame("lisa"));
    h.core.connection_closed(4);
    assert_eq!(h.core.authenticate(4, Ok(())), Err(ActionError::UnknownRequest(4)));
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.outputs(), Vec::<String>::new());
}

#[test]
fn relinking_from_a_new_connection() {
    let mut h = Harness::new();
    h.linked(1, "simon");
    h.linked(2, "lisa");
    h.core.connection_closed(1);
    h.outputs();
    h.open(3);
    assert_eq!(
        h.frame(3, &link_frame("simon")),
        lines(&[
            format!("3 <- {ACCEPTED}"),
            format!("3 <- {}", joined("simon")),
            format!("3 <- {}", linked("simon")),
            format!("3 <- {}", joined("lisa")),
            format!("3 <- {}", linked("lisa")),
            format!("2 <- {}", linked("simon")),
            "event link simon".into(),
        ])
    );
    // The old connection id is gone for good.
    assert_eq!(h.frame(1, r#"{"type":"a"}"#), Vec::<String>::new());
}

#[test]
fn a_user_has_at_most_one_connection_and_a_connection_at_most_one_user() {
    let mut h = Harness::new();
    h.linked(1, "simon");
    h.open(2);
    assert_eq!(h.frame(2, &link_frame("simon")), [format!("2 <- {}", rejected("user simon is already linked to a connection"))]);
    // A linked connection asking to link (to anyone) is unlinked, not double-linked.
    assert_eq!(
        h.frame(1, &link_frame("other")),
        lines(&[format!("1 <- {}", unlinked("simon")), "event unlink simon".into()])
    );
    assert_eq!(h.users(), [("simon".into(), false)]);
}

#[test]
fn limits_the_most_users_rejects_links_of_new_users_and_joins_when_full() {
    let config = ServerCoreConfig { max_users: 2, ..Default::default() };
    let mut h = Harness::with(config);
    h.linked(1, "simon");
    h.core.join("lisa").unwrap();
    h.outputs();
    h.open(3);
    assert_eq!(h.frame(3, &link_frame("marco")), [format!("3 <- {}", rejected("server is full"))]);
    assert_eq!(h.core.join("marco"), Err(ActionError::TooManyUsers(2)));
    assert_eq!(ActionError::TooManyUsers(2).to_string(), "the server already has its most users (2)");
    // Known users still link while the server is full, and a leave makes room.
    assert!(h.frame(3, &link_frame("lisa")).contains(&"event link lisa".to_string()));
    h.core.kick("simon").unwrap();
    h.outputs();
    h.open(4);
    assert!(h.frame(4, &link_frame("marco")).contains(&"event join marco".to_string()));
    assert_eq!(h.users(), [("lisa".to_string(), true), ("marco".to_string(), true)]);
}

#[test]
fn link_timeout_closes_connections_left_unlinked_since_opening_or_unlinking() {
    let limit = Duration::from_secs(30);
    let config = ServerCoreConfig { link_timeout: Some(limit), ..Default::default() };
    let mut h = Harness::with(config);
    let start = h.now;
    h.open(1);
    h.open(2);
    h.open(3);
    h.core.tick(start);
    assert_eq!(h.core.link_timer_count(), 3);
    assert_eq!(h.core.next_deadline(), Some(start + limit));
    // 2 links in time; 3 is rejected (a rejection is not a link) and keeps its deadline.
    h.now = start + Duration::from_secs(10);
    h.frame(2, &link_frame("simon"));
    assert_eq!(h.frame(3, &link_frame("x")), [format!("3 <- {}", rejected("invalid username"))]);
    h.core.tick(start + limit - Duration::from_millis(1));
    assert_eq!(h.outputs(), Vec::<String>::new());
    h.core.tick(start + limit);
    assert_eq!(h.outputs(), ["close 1 (link timeout)", "close 3 (link timeout)"]);
    h.core.connection_closed(1);
    h.core.connection_closed(3);
    // Unlinked by the host at 40 s: its time counts from the next tick after that.
    h.core.unlink("simon").unwrap();
    h.outputs();
    h.core.tick(start + Duration::from_secs(40));
    assert_eq!(h.core.next_deadline(), Some(start + Duration::from_secs(40) + limit));
    h.core.tick(start + Duration::from_secs(69));
    assert_eq!(h.outputs(), Vec::<String>::new());
    h.core.tick(start + Duration::from_secs(70));
    assert_eq!(h.outputs(), ["close 2 (link timeout)"]);
    h.core.connection_closed(2);
    assert_eq!(h.core.link_timer_count(), 0);
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn no_link_timeout_by_default_in_the_core() {
    let mut h = Harness::new();
    h.open(1);
    h.core.tick(h.now + Duration::from_secs(3600));
    assert_eq!(h.outputs(), Vec::<String>::new());
    assert_eq!(h.core.link_timer_count(), 0);
}
