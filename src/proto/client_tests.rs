//! Table-driven tests of the client state machine: PROTOCOL.md "Client behaviour", what the server's
//! steps 3-7 send to a client, and the automatic reconnect.

use super::*;

/// Renders an output as a line: `dial`, `send {json}`, `close`, `event join simon`. A Reconnecting
/// event renders without its delay (`event reconnecting 2: why`); the delay goes to `delays`, where
/// the tests check it against its bounds and against `next_deadline`.
fn render(output: ClientOutput, delays: &mut Vec<Duration>) -> String {
    match output {
        ClientOutput::Dial => "dial".to_string(),
        ClientOutput::Send(frame) => format!("send {}", String::from_utf8(frame.to_vec()).unwrap()),
        ClientOutput::Close => "close".to_string(),
        ClientOutput::Event(event) => match event {
            ClientEvent::Connect => "event connect".to_string(),
            ClientEvent::Accept => "event accept".to_string(),
            ClientEvent::Reject { reason } => format!("event reject {reason}"),
            ClientEvent::Join { username } => format!("event join {username}"),
            ClientEvent::Link { username } => format!("event link {username}"),
            ClientEvent::Unlink { username } => format!("event unlink {username}"),
            ClientEvent::Leave { username } => format!("event leave {username}"),
            ClientEvent::Message { message } => {
                format!("event message {}", String::from_utf8(message.to_frame().to_vec()).unwrap())
            }
            ClientEvent::Reconnecting { attempt, delay, why } => {
                delays.push(delay);
                format!("event reconnecting {attempt}: {why}")
            }
            ClientEvent::Reconnect => "event reconnect".to_string(),
            ClientEvent::Close { why } => format!("event close {why}"),
        },
    }
}

/// Expected output lines, from any mix of `&str` and `String`.
macro_rules! lines {
    ($($line:expr),* $(,)?) => { { let v: Vec<String> = vec![$($line.to_string()),*]; v } };
}

const NOTHING: [&str; 0] = [];
const ACCEPTED: &str = r#"{"type":"krmx/accepted"}"#;
const MS: Duration = Duration::from_millis(1);
const NS: Duration = Duration::from_nanos(1);

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
/// The line for the link frame the client writes.
fn sent_link(username: &str, auth: Option<&str>) -> String {
    match auth {
        None => format!(r#"send {{"type":"krmx/link","payload":{{"username":"{username}","version":"0.5.5"}}}}"#),
        Some(auth) => format!(
            r#"send {{"type":"krmx/link","payload":{{"username":"{username}","version":"0.5.5","auth":"{auth}"}}}}"#
        ),
    }
}
fn stale(username: &str) -> String {
    format!("user {username} is already linked to a connection")
}

/// 100 ms doubling up to 1 s: backoffs 100, 200, 400, 800, 1000, 1000, ... ms.
fn policy(max_attempts: u32) -> ReconnectPolicy {
    ReconnectPolicy { min_delay: 100 * MS, max_delay: 1000 * MS, max_attempts }
}

/// The backoff of `attempt` under [`policy`].
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << (attempt - 1).min(10)).min(1000))
}

/// Drives a core; `now` only moves when a test moves it.
struct Harness {
    core: ClientCore,
    now: Instant,
    delays: Vec<Duration>,
}

impl Harness {
    fn new() -> Self {
        Harness::with(ClientCoreConfig::default())
    }

    fn with(config: ClientCoreConfig) -> Self {
        Harness { core: ClientCore::new(config), now: Instant::now(), delays: Vec::new() }
    }

    fn reconnecting(policy: ReconnectPolicy) -> Self {
        Harness::seeded(policy, 7)
    }

    /// Linked as simon, dropped, reconnected, and the re-link refused as stale (the server still
    /// holds the old link): waiting to retry it.
    fn waiting_to_retry_a_stale_relink() -> Self {
        let mut h = Harness::reconnecting(policy(0));
        h.linked("simon", None);
        h.closed("reset");
        h.wait_for_deadline();
        h.tick();
        h.opened();
        h.frame(&rejected(&stale("simon")));
        h
    }

    fn seeded(policy: ReconnectPolicy, jitter_seed: u64) -> Self {
        Harness::with(ClientCoreConfig { reconnect: Some(policy), jitter_seed, ..Default::default() })
    }

    fn outputs(&mut self) -> Vec<String> {
        let core = &mut self.core;
        let delays = &mut self.delays;
        std::iter::from_fn(|| core.poll_output()).map(|o| render(o, delays)).collect()
    }

    fn status(&self) -> ClientStatus {
        self.core.status()
    }

    fn users(&self) -> Vec<(String, bool)> {
        self.core.users().map(|(n, l)| (n.to_string(), l)).collect()
    }

    fn connect(&mut self) -> Vec<String> {
        self.core.connect().unwrap();
        self.outputs()
    }

    fn opened(&mut self) -> Vec<String> {
        self.core.opened();
        self.outputs()
    }

    fn frame(&mut self, frame: &str) -> Vec<String> {
        self.core.frame(frame.as_bytes(), self.now);
        self.outputs()
    }

    fn closed(&mut self, why: &str) -> Vec<String> {
        self.core.closed(why.to_string(), self.now);
        self.outputs()
    }

    fn link(&mut self, username: &str, auth: Option<&str>) -> Vec<String> {
        self.core.link(username, auth).unwrap();
        self.outputs()
    }

    fn tick(&mut self) -> Vec<String> {
        self.core.tick(self.now);
        self.outputs()
    }

    /// Moves the clock to the pending reconnect's deadline.
    fn wait_for_deadline(&mut self) {
        self.now = self.core.next_deadline().expect("a reconnect is waiting");
    }

    /// Connects and opens.
    fn connected(&mut self) {
        assert_eq!(self.connect(), ["dial"]);
        assert_eq!(self.opened(), ["event connect"]);
        assert_eq!(self.status(), ClientStatus::Connected);
    }

    /// Connects and links as the server's first user (PROTOCOL.md step 4).
    fn linked(&mut self, username: &str, auth: Option<&str>) {
        self.connected();
        assert_eq!(self.link(username, auth), [sent_link(username, auth)]);
        assert_eq!(self.frame(ACCEPTED), ["event accept"]);
        assert_eq!(self.frame(&joined(username)), [format!("event join {username}")]);
        assert_eq!(self.frame(&linked(username)), [format!("event link {username}")]);
        assert_eq!(self.status(), ClientStatus::Linked);
    }

    /// The last Reconnecting delay, checked against the bounds of `attempt` under [`policy`], and
    /// against the deadline it set.
    fn check_delay(&self, attempt: u32) -> Duration {
        let delay = *self.delays.last().expect("a Reconnecting event");
        let backoff = backoff(attempt);
        assert!(delay >= backoff / 2 && delay <= backoff, "attempt {attempt}: {delay:?} not in [{:?}, {backoff:?}]", backoff / 2);
        assert_eq!(self.core.next_deadline(), Some(self.now + delay));
        delay
    }
}

fn users(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, l)| (n.to_string(), *l)).collect()
}

// ---- status lifecycle ----

#[test]
fn lifecycle_outputs_are_exact_values() {
    let mut core = ClientCore::new(ClientCoreConfig::default());
    let now = Instant::now();
    assert_eq!(core.status(), ClientStatus::Initializing);
    assert_eq!(core.poll_output(), None);
    core.connect().unwrap();
    assert_eq!(core.poll_output(), Some(ClientOutput::Dial));
    assert_eq!(core.poll_output(), None);
    core.opened();
    assert_eq!(core.poll_output(), Some(ClientOutput::Event(ClientEvent::Connect)));
    core.link("simon", Some("secret")).unwrap();
    assert_eq!(
        core.poll_output(),
        Some(ClientOutput::Send(Bytes::from_static(
            br#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.5","auth":"secret"}}"#
        )))
    );
    core.frame(ACCEPTED.as_bytes(), now);
    assert_eq!(core.poll_output(), Some(ClientOutput::Event(ClientEvent::Accept)));
    core.frame(br#"{"type":"game/move","payload":{"x":[1,2]},"extra":true}"#, now);
    assert_eq!(
        core.poll_output(),
        Some(ClientOutput::Event(ClientEvent::Message {
            message: Message::new("game/move", Some(serde_json::json!({"x":[1,2]})))
        }))
    );
    core.disconnect().unwrap();
    assert_eq!(core.poll_output(), Some(ClientOutput::Close));
    core.closed("bye".into(), now);
    assert_eq!(
        core.poll_output(),
        Some(ClientOutput::Event(ClientEvent::Close { why: "disconnected by the client".into() }))
    );
    assert_eq!(core.poll_output(), None);
}

#[test]
fn lifecycle_connect_link_unlink_returns_to_connected() {
    let mut h = Harness::new();
    assert_eq!(h.connect(), ["dial"]);
    assert_eq!(h.status(), ClientStatus::Connecting);
    assert_eq!(h.opened(), ["event connect"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.link("simon", None), [sent_link("simon", None)]);
    assert_eq!(h.status(), ClientStatus::Linking);
    assert_eq!(h.core.username(), Some("simon"));
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.frame(ACCEPTED), ["event accept"]);
    assert_eq!(h.status(), ClientStatus::Linked);
    assert_eq!(h.users(), users(&[("simon", true)]));
    assert_eq!(h.frame(&joined("simon")), ["event join simon"]);
    assert_eq!(h.frame(&linked("simon")), ["event link simon"]);
    assert_eq!(h.users(), users(&[("simon", true)]));
    assert_eq!(h.core.user_count(), 1);
    assert_eq!(h.core.user_at(0), Some(("simon", true)));
    assert_eq!(h.core.user_at(1), None);

    h.core.unlink().unwrap();
    assert_eq!(h.outputs(), [r#"send {"type":"krmx/unlink"}"#]);
    assert_eq!(h.status(), ClientStatus::Unlinking);
    assert_eq!(h.frame(&unlinked("simon")), ["event unlink simon"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.core.username(), None);
    // The connection stays usable.
    assert_eq!(h.link("lisa", None), [sent_link("lisa", None)]);
}

#[test]
fn link_frame_carries_auth_only_when_given() {
    for (auth, expected) in [
        (None, r#"send {"type":"krmx/link","payload":{"username":"simon","version":"0.5.5"}}"#),
        (Some("secret"), r#"send {"type":"krmx/link","payload":{"username":"simon","version":"0.5.5","auth":"secret"}}"#),
        (Some(""), r#"send {"type":"krmx/link","payload":{"username":"simon","version":"0.5.5","auth":""}}"#),
        (Some("a\"b"), r#"send {"type":"krmx/link","payload":{"username":"simon","version":"0.5.5","auth":"a\"b"}}"#),
    ] {
        let mut h = Harness::new();
        h.connected();
        assert_eq!(h.link("simon", auth), [expected], "auth {auth:?}");
    }
}

#[test]
fn link_frame_sends_the_configured_version() {
    let mut h = Harness::with(ClientCoreConfig { protocol_version: "0.6.1".into(), ..Default::default() });
    h.connected();
    assert_eq!(h.link("simon", None), [r#"send {"type":"krmx/link","payload":{"username":"simon","version":"0.6.1"}}"#]);
}

#[test]
fn leave_gives_unlink_then_leave_and_an_empty_table() {
    let mut h = Harness::new();
    h.linked("simon", None);
    h.frame(&joined("lisa"));
    h.core.leave().unwrap();
    assert_eq!(h.outputs(), [r#"send {"type":"krmx/leave"}"#]);
    assert_eq!(h.status(), ClientStatus::Unlinking);
    assert_eq!(h.frame(&unlinked("simon")), ["event unlink simon"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.frame(&left("simon")), ["event leave simon"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.users(), users(&[]));
}

#[test]
fn disconnect_closes_then_the_close_event_and_connect_again() {
    let mut h = Harness::new();
    h.linked("simon", None);
    h.core.disconnect().unwrap();
    assert_eq!(h.outputs(), ["close"]);
    assert_eq!(h.status(), ClientStatus::Closing);
    // Nothing is read while closing.
    assert_eq!(h.frame(r#"{"type":"game/late"}"#), NOTHING);
    assert_eq!(h.frame(&unlinked("simon")), NOTHING);
    assert_eq!(h.closed("closed by peer"), ["event close disconnected by the client"]);
    assert_eq!(h.status(), ClientStatus::Closed);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.core.username(), None);
    // A second closed report changes nothing.
    assert_eq!(h.closed("again"), NOTHING);
    // Connect again from closed.
    assert_eq!(h.connect(), ["dial"]);
    assert_eq!(h.status(), ClientStatus::Connecting);
    assert_eq!(h.opened(), ["event connect"]);
    assert_eq!(h.link("simon", None), [sent_link("simon", None)]);
}

#[test]
fn disconnect_while_dialing_ignores_a_late_open() {
    let mut h = Harness::new();
    h.connect();
    h.core.disconnect().unwrap();
    assert_eq!(h.outputs(), ["close"]);
    assert_eq!(h.status(), ClientStatus::Closing);
    assert_eq!(h.opened(), NOTHING);
    assert_eq!(h.status(), ClientStatus::Closing);
    assert_eq!(h.closed("aborted"), ["event close disconnected by the client"]);
    assert_eq!(h.status(), ClientStatus::Closed);
}

// ---- the user table, fed as our server feeds it (PROTOCOL.md steps 4, 6 and 7) ----

#[test]
fn table_of_the_first_user_then_others_join_and_link() {
    let mut h = Harness::new();
    h.linked("simon", None);
    // The host joins lisa (step 9): joined only. Then marco links (step 4, to other connections).
    for (frame, out, table) in [
        (joined("lisa"), "event join lisa", vec![("simon", true), ("lisa", false)]),
        (joined("marco"), "event join marco", vec![("simon", true), ("lisa", false), ("marco", false)]),
        (linked("marco"), "event link marco", vec![("simon", true), ("lisa", false), ("marco", true)]),
        (linked("lisa"), "event link lisa", vec![("simon", true), ("lisa", true), ("marco", true)]),
    ] {
        assert_eq!(h.frame(&frame), [out]);
        assert_eq!(h.users(), users(&table), "after {frame}");
    }
}

#[test]
fn table_of_a_later_user_is_in_join_order() {
    // simon (linked) and lisa (unlinked) are known; marco is new (step 4).
    let mut h = Harness::new();
    h.connected();
    h.link("marco", None);
    for (frame, out, table) in [
        (ACCEPTED.to_string(), "event accept", vec![("marco", true)]),
        (joined("simon"), "event join simon", vec![("marco", true), ("simon", false)]),
        (linked("simon"), "event link simon", vec![("marco", true), ("simon", true)]),
        (joined("lisa"), "event join lisa", vec![("marco", true), ("simon", true), ("lisa", false)]),
        // Our own joined puts us in our place.
        (joined("marco"), "event join marco", vec![("simon", true), ("lisa", false), ("marco", true)]),
        (linked("marco"), "event link marco", vec![("simon", true), ("lisa", false), ("marco", true)]),
    ] {
        assert_eq!(h.frame(&frame), [out]);
        assert_eq!(h.users(), users(&table), "after {frame}");
    }
    assert_eq!(h.core.user_at(2), Some(("marco", true)));
}

#[test]
fn table_follows_other_users_unlinking_and_leaving() {
    let mut h = Harness::new();
    h.linked("simon", None);
    h.frame(&joined("lisa"));
    h.frame(&linked("lisa"));
    h.frame(&joined("marco"));
    h.frame(&linked("marco"));
    for (frame, out, table) in [
        (unlinked("lisa"), "event unlink lisa", vec![("simon", true), ("lisa", false), ("marco", true)]),
        (linked("lisa"), "event link lisa", vec![("simon", true), ("lisa", true), ("marco", true)]),
        // lisa leaves while linked (step 7): unlinked, then left.
        (unlinked("lisa"), "event unlink lisa", vec![("simon", true), ("lisa", false), ("marco", true)]),
        (left("lisa"), "event leave lisa", vec![("simon", true), ("marco", true)]),
        // lisa comes back: a new user, at the end.
        (joined("lisa"), "event join lisa", vec![("simon", true), ("marco", true), ("lisa", false)]),
        (linked("lisa"), "event link lisa", vec![("simon", true), ("marco", true), ("lisa", true)]),
        // A user the host kicks while unlinked: left only.
        (unlinked("marco"), "event unlink marco", vec![("simon", true), ("marco", false), ("lisa", true)]),
        (left("marco"), "event leave marco", vec![("simon", true), ("lisa", true)]),
    ] {
        assert_eq!(h.frame(&frame), [out]);
        assert_eq!(h.users(), users(&table), "after {frame}");
        assert_eq!(h.status(), ClientStatus::Linked);
    }
}

#[test]
fn a_kick_unlinks_then_leaves_self_and_the_client_may_link_again() {
    let mut h = Harness::new();
    h.linked("simon", None);
    h.frame(&joined("lisa"));
    assert_eq!(h.frame(&unlinked("simon")), ["event unlink simon"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.frame(&left("simon")), ["event leave simon"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.link("simon", None), [sent_link("simon", None)]);
    assert_eq!(h.frame(ACCEPTED), ["event accept"]);
    assert_eq!(h.users(), users(&[("simon", true)]));
}

// ---- rejection (PROTOCOL.md step 3) ----

#[test]
fn a_rejection_gives_the_exact_reason_and_the_client_may_link_again() {
    for reason in [
        "invalid link request",
        "krmx server version mismatch (server=0.6.*,client=0.5.5)",
        "invalid username",
        "server is not accepting new users",
        "user simon is already linked to a connection",
        "authentication timeout",
        "authentication failed",
        "server is full",
    ] {
        // With reconnect on too: outside a reconnect, a stale-link reason is a plain rejection.
        for config in [ClientCoreConfig::default(), ClientCoreConfig { reconnect: Some(policy(0)), ..Default::default() }] {
            let mut h = Harness::with(config);
            h.connected();
            h.link("simon", None);
            assert_eq!(h.frame(&rejected(reason)), [format!("event reject {reason}")]);
            assert_eq!(h.status(), ClientStatus::Connected);
            assert_eq!(h.core.username(), None);
            assert_eq!(h.users(), users(&[]));
            assert_eq!(h.core.next_deadline(), None);
            assert_eq!(h.link("simon", Some("x")), [sent_link("simon", Some("x"))]);
            assert_eq!(h.frame(ACCEPTED), ["event accept"]);
        }
    }
}

#[test]
fn a_rejection_without_a_reason_still_rejects() {
    for frame in [r#"{"type":"krmx/rejected"}"#, r#"{"type":"krmx/rejected","payload":{"reason":3}}"#] {
        let mut h = Harness::new();
        h.connected();
        h.link("simon", None);
        assert_eq!(h.frame(frame), ["event reject rejected without a reason"], "{frame}");
        assert_eq!(h.status(), ClientStatus::Connected);
    }
}

#[test]
fn accepted_or_rejected_when_not_linking_is_ignored() {
    let mut h = Harness::new();
    h.connected();
    assert_eq!(h.frame(ACCEPTED), NOTHING);
    assert_eq!(h.frame(&rejected("unlinked connection")), NOTHING);
    assert_eq!(h.status(), ClientStatus::Connected);
    h.link("simon", None);
    h.frame(ACCEPTED);
    assert_eq!(h.frame(ACCEPTED), NOTHING);
    assert_eq!(h.frame(&rejected("invalid message")), NOTHING);
    assert_eq!(h.status(), ClientStatus::Linked);
}

#[test]
fn a_rejection_of_a_frame_sent_before_an_unlink_is_not_the_answer_to_the_next_link() {
    // Found by tests/proto_fuzz_session.rs: the server unlinks the client while its unlink (or
    // leave, or message) is on the way; the client hears of the unlink and links again; the server
    // rejects the old frame ("unlinked connection"), then accepts the link. Taking that rejection
    // for the link's answer left the client connected while the server had it linked.
    for (action, frame) in [("unlink", r#"{"type":"krmx/unlink"}"#), ("leave", r#"{"type":"krmx/leave"}"#)] {
        let mut h = Harness::new();
        h.linked("simon", None);
        let sent = if action == "unlink" { h.core.unlink() } else { h.core.leave() };
        sent.unwrap();
        assert_eq!(h.outputs(), [format!("send {frame}")]);
        assert_eq!(h.frame(&unlinked("simon")), ["event unlink simon"]);
        assert_eq!(h.link("simon", None), [sent_link("simon", None)]);
        assert_eq!(h.frame(&rejected("unlinked connection")), NOTHING, "{action}");
        assert_eq!(h.status(), ClientStatus::Linking);
        assert_eq!(h.frame(ACCEPTED), ["event accept"]);
        assert_eq!(h.frame(&joined("simon")), ["event join simon"]);
        assert_eq!(h.frame(&linked("simon")), ["event link simon"]);
        assert_eq!(h.status(), ClientStatus::Linked);
        assert_eq!(h.users(), users(&[("simon", true)]));
    }
}

#[test]
fn joined_and_linked_out_of_turn_leave_an_unlinked_client_empty() {
    // Found by tests/proto_fuzz_client.rs: a server that sends joined or linked to a connection that
    // is not linked (which ours never does) filled the table of a client that was not linked.
    let mut h = Harness::new();
    h.connected();
    assert_eq!(h.frame(&joined("lisa")), NOTHING);
    assert_eq!(h.frame(&linked("lisa")), NOTHING);
    assert_eq!(h.users(), users(&[]));
    h.link("simon", None);
    assert_eq!(h.frame(&joined("lisa")), NOTHING);
    assert_eq!(h.status(), ClientStatus::Linking);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.frame(ACCEPTED), ["event accept"]);
    assert_eq!(h.frame(&joined("lisa")), ["event join lisa"]);
    assert_eq!(h.users(), users(&[("simon", true), ("lisa", false)]));
    // While unlinking, the server may still tell of others until it reads our unlink.
    h.core.unlink().unwrap();
    h.outputs();
    assert_eq!(h.frame(&linked("lisa")), ["event link lisa"]);
    assert_eq!(h.frame(&unlinked("simon")), ["event unlink simon"]);
    assert_eq!(h.frame(&joined("marco")), NOTHING);
    assert_eq!(h.users(), users(&[]));
}

// ---- the host's actions, refused in the wrong status ----

const ALL_STATUSES: [ClientStatus; 8] = [
    ClientStatus::Initializing,
    ClientStatus::Connecting,
    ClientStatus::Connected,
    ClientStatus::Linking,
    ClientStatus::Linked,
    ClientStatus::Unlinking,
    ClientStatus::Closing,
    ClientStatus::Closed,
];

/// A fresh client in `status`, its outputs drained.
fn in_status(status: ClientStatus) -> Harness {
    let mut h = Harness::new();
    match status {
        ClientStatus::Initializing => {}
        ClientStatus::Connecting => {
            h.connect();
        }
        ClientStatus::Connected => h.connected(),
        ClientStatus::Linking => {
            h.connected();
            h.link("simon", None);
        }
        ClientStatus::Linked => h.linked("simon", None),
        ClientStatus::Unlinking => {
            h.linked("simon", None);
            h.core.unlink().unwrap();
        }
        ClientStatus::Closing => {
            h.connected();
            h.core.disconnect().unwrap();
        }
        ClientStatus::Closed => {
            h.connected();
            h.core.disconnect().unwrap();
            h.closed("bye");
        }
    }
    h.outputs();
    assert_eq!(h.status(), status);
    h
}

#[test]
fn actions_are_refused_in_the_wrong_status() {
    use ClientStatus::*;
    type Action = fn(&mut ClientCore) -> Result<(), ClientActionError>;
    let actions: [(&str, Action, &[ClientStatus]); 6] = [
        ("connect", |c| c.connect(), &[Initializing, Closed]),
        ("link", |c| c.link("lisa", None), &[Connected]),
        ("unlink", |c| c.unlink(), &[Linked]),
        ("leave", |c| c.leave(), &[Linked]),
        ("send", |c| c.send_message(&Message::new("game/move", None)), &[Linked]),
        ("disconnect", |c| c.disconnect(), &[Connecting, Connected, Linking, Linked, Unlinking]),
    ];
    for (action, act, allowed) in actions {
        for status in ALL_STATUSES {
            let mut h = in_status(status);
            let result = act(&mut h.core);
            if allowed.contains(&status) {
                assert_eq!(result, Ok(()), "{action} when {status}");
            } else {
                assert_eq!(result, Err(ClientActionError::WrongStatus { action, status }), "{action} when {status}");
                assert_eq!(h.outputs(), NOTHING, "{action} when {status}");
                assert_eq!(h.status(), status, "{action} when {status}");
            }
        }
    }
}

#[test]
fn refusals_read_well() {
    let mut h = in_status(ClientStatus::Linking);
    assert_eq!(h.core.link("simon", None).unwrap_err().to_string(), "cannot link when the client is linking");
    assert_eq!(
        h.core.send_message(&Message::new("krmx/x", None)).unwrap_err().to_string(),
        "cannot send custom messages with a type starting with the internal 'krmx/' prefix"
    );
}

#[test]
fn sending_a_krmx_type_is_refused_in_every_status() {
    for status in ALL_STATUSES {
        let mut h = in_status(status);
        for kind in ["krmx/link", "krmx/unlink", "krmx/custom", "krmx/"] {
            assert_eq!(
                h.core.send_message(&Message::new(kind, None)),
                Err(ClientActionError::ReservedType),
                "{kind} when {status}"
            );
            assert_eq!(h.outputs(), NOTHING);
        }
    }
}

#[test]
fn sending_while_linked_writes_the_exact_frame() {
    let mut h = in_status(ClientStatus::Linked);
    for (message, expected) in [
        (Message::new("game/move", None), r#"send {"type":"game/move"}"#),
        (Message::new("chat", Some(serde_json::json!({"text":"hi","n":[1,2]}))), r#"send {"type":"chat","payload":{"text":"hi","n":[1,2]}}"#),
        (Message::new("krmxish", Some(serde_json::Value::Null)), r#"send {"type":"krmxish","payload":null}"#),
    ] {
        h.core.send_message(&message).unwrap();
        assert_eq!(h.outputs(), [expected]);
    }
}

// ---- frames from the server ----

#[test]
fn custom_messages_are_delivered_only_while_linked() {
    let frame = r#"{"type":"game/move","payload":{"x":1}}"#;
    let delivered = [format!("event message {frame}")];
    for (status, expected) in [
        (ClientStatus::Initializing, &[][..]),
        (ClientStatus::Connecting, &[][..]),
        (ClientStatus::Connected, &[][..]),
        (ClientStatus::Linking, &[][..]),
        (ClientStatus::Linked, &delivered[..]),
        // Sent by the server before it read our unlink: we are still linked on its side.
        (ClientStatus::Unlinking, &delivered[..]),
        (ClientStatus::Closing, &[][..]),
        (ClientStatus::Closed, &[][..]),
    ] {
        let mut h = in_status(status);
        assert_eq!(h.frame(frame), expected, "when {status}");
        assert_eq!(h.status(), status);
    }
}

#[test]
fn invalid_frames_are_ignored() {
    for status in [ClientStatus::Connected, ClientStatus::Linking, ClientStatus::Linked] {
        for frame in ["", "not-json", "null", "42", "true", "\"hello\"", "[]", "{}", "{\"type\":3}", "{\"type\":null}", "{\"type\":\"a\""] {
            let mut h = in_status(status);
            let table = h.users();
            assert_eq!(h.frame(frame), NOTHING, "{frame:?} when {status}");
            assert_eq!(h.status(), status);
            assert_eq!(h.users(), table);
        }
        let mut h = in_status(status);
        h.core.frame(&[0xff, 0xfe], h.now);
        assert_eq!(h.outputs(), NOTHING);
    }
}

#[test]
fn unknown_krmx_types_and_bad_payloads_are_ignored() {
    let mut h = Harness::new();
    h.linked("simon", None);
    for frame in [
        r#"{"type":"krmx/whatever","payload":{"username":"simon"}}"#,
        r#"{"type":"krmx/link","payload":{"username":"lisa","version":"0.5.5"}}"#,
        r#"{"type":"krmx/unlink"}"#,
        r#"{"type":"krmx/joined"}"#,
        r#"{"type":"krmx/joined","payload":{"username":3}}"#,
        r#"{"type":"krmx/linked","payload":"simon"}"#,
        r#"{"type":"krmx/unlinked","payload":{}}"#,
        r#"{"type":"krmx/left","payload":null}"#,
    ] {
        assert_eq!(h.frame(frame), NOTHING, "{frame}");
        assert_eq!(h.status(), ClientStatus::Linked);
        assert_eq!(h.users(), users(&[("simon", true)]));
    }
}

// ---- reconnect ----

#[test]
fn a_drop_while_linked_reconnects_and_relinks_with_the_same_username_and_auth() {
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", Some("secret"));
    h.frame(&joined("lisa"));
    assert_eq!(h.closed("connection reset"), ["event reconnecting 1: connection reset"]);
    assert_eq!(h.status(), ClientStatus::Connecting);
    assert_eq!(h.users(), users(&[]));
    assert_eq!(h.core.username(), None);
    let delay = h.check_delay(1);

    // Not before the deadline.
    let start = h.now;
    h.now = start + delay - NS;
    assert_eq!(h.tick(), NOTHING);
    assert_eq!(h.status(), ClientStatus::Connecting);
    h.now = start + delay;
    assert_eq!(h.tick(), ["dial"]);
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.tick(), NOTHING, "one dial per attempt");
    assert_eq!(h.status(), ClientStatus::Connecting);

    assert_eq!(h.opened(), lines!["event connect", sent_link("simon", Some("secret"))]);
    assert_eq!(h.status(), ClientStatus::Linking);
    assert_eq!(h.core.username(), Some("simon"));
    assert_eq!(h.frame(ACCEPTED), ["event accept", "event reconnect"]);
    assert_eq!(h.status(), ClientStatus::Linked);
    assert_eq!(h.users(), users(&[("simon", true)]));
    assert_eq!(h.frame(&joined("simon")), ["event join simon"]);
    assert_eq!(h.frame(&linked("simon")), ["event link simon"]);
    assert_eq!(h.frame(&joined("lisa")), ["event join lisa"]);
    assert_eq!(h.users(), users(&[("simon", true), ("lisa", false)]));
    assert_eq!(h.core.next_deadline(), None);

    // The attempts start over after a successful reconnect.
    assert_eq!(h.closed("reset again"), ["event reconnecting 1: reset again"]);
    h.check_delay(1);
}

#[test]
fn a_drop_while_not_linked_reconnects_without_linking() {
    let mut h = Harness::reconnecting(policy(0));
    h.connected();
    assert_eq!(h.closed("server went away"), ["event reconnecting 1: server went away"]);
    assert_eq!(h.status(), ClientStatus::Connecting);
    h.check_delay(1);
    h.wait_for_deadline();
    assert_eq!(h.tick(), ["dial"]);
    assert_eq!(h.opened(), ["event connect", "event reconnect"]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn a_drop_while_linking_relinks_after_reconnecting() {
    let mut h = Harness::reconnecting(policy(0));
    h.connected();
    h.link("simon", None);
    assert_eq!(h.closed("reset"), ["event reconnecting 1: reset"]);
    h.wait_for_deadline();
    assert_eq!(h.tick(), ["dial"]);
    assert_eq!(h.opened(), lines!["event connect", sent_link("simon", None)]);
}

#[test]
fn failed_dials_back_off_doubling_and_give_up_after_max_attempts() {
    let mut h = Harness::reconnecting(policy(6));
    h.linked("simon", None);
    assert_eq!(h.closed("connection reset"), ["event reconnecting 1: connection reset"]);
    h.check_delay(1);
    for attempt in 2..=6 {
        h.wait_for_deadline();
        assert_eq!(h.tick(), ["dial"]);
        assert_eq!(h.closed("connection refused"), [format!("event reconnecting {attempt}: connection refused")]);
        assert_eq!(h.status(), ClientStatus::Connecting);
        h.check_delay(attempt);
    }
    h.wait_for_deadline();
    assert_eq!(h.tick(), ["dial"]);
    assert_eq!(h.closed("connection refused"), ["event close gave up reconnecting after 6 attempts: connection refused"]);
    assert_eq!(h.status(), ClientStatus::Closed);
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.delays.len(), 6);
    // Over for good: time passing does nothing, and a new connect does not re-link.
    h.now += Duration::from_secs(60);
    assert_eq!(h.tick(), NOTHING);
    h.connected();
    assert_eq!(h.core.username(), None);
}

#[test]
fn max_attempts_zero_never_gives_up() {
    let mut h = Harness::reconnecting(policy(0));
    h.connected();
    h.closed("reset");
    for attempt in 2..=40 {
        h.wait_for_deadline();
        assert_eq!(h.tick(), ["dial"]);
        assert_eq!(h.closed("refused"), [format!("event reconnecting {attempt}: refused")]);
        h.check_delay(attempt);
    }
}

#[test]
fn a_stale_link_rejection_while_relinking_retries_on_the_same_connection() {
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", Some("secret"));
    h.closed("liveness lost");
    h.wait_for_deadline();
    h.tick();
    assert_eq!(h.opened(), lines!["event connect", sent_link("simon", Some("secret"))]);
    assert_eq!(h.frame(&rejected(&stale("simon"))), [format!("event reconnecting 2: {}", stale("simon"))]);
    // The connection is kept; the status stays linking so that the host cannot link meanwhile.
    assert_eq!(h.status(), ClientStatus::Linking);
    assert_eq!(h.core.link("lisa", None), Err(ClientActionError::WrongStatus { action: "link", status: ClientStatus::Linking }));
    let delay = h.check_delay(2);
    let start = h.now;
    h.now = start + delay - NS;
    assert_eq!(h.tick(), NOTHING);
    h.now = start + delay;
    assert_eq!(h.tick(), [sent_link("simon", Some("secret"))], "no dial: the connection is open");
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.status(), ClientStatus::Linking);
    // Stale again: the attempts count on.
    assert_eq!(h.frame(&rejected(&stale("simon"))), [format!("event reconnecting 3: {}", stale("simon"))]);
    h.check_delay(3);
    h.wait_for_deadline();
    assert_eq!(h.tick(), [sent_link("simon", Some("secret"))]);
    assert_eq!(h.frame(ACCEPTED), ["event accept", "event reconnect"]);
    assert_eq!(h.status(), ClientStatus::Linked);
}

#[test]
fn an_accepted_while_waiting_to_retry_a_relink_is_ignored() {
    // Found by tests/proto_fuzz_client.rs: an accepted out of turn, between a stale rejection and
    // the retry, linked the client without a username and without itself in its table.
    let mut h = Harness::waiting_to_retry_a_stale_relink();
    assert_eq!(h.frame(ACCEPTED), NOTHING);
    assert_eq!(h.status(), ClientStatus::Linking);
    h.wait_for_deadline();
    assert_eq!(h.tick(), [sent_link("simon", None)]);
    assert_eq!(h.frame(ACCEPTED), ["event accept", "event reconnect"]);
    assert_eq!(h.core.username(), Some("simon"));
    assert_eq!(h.users(), users(&[("simon", true)]));
}

#[test]
fn a_drop_while_waiting_to_relink_redials() {
    let mut h = Harness::waiting_to_retry_a_stale_relink();
    assert_eq!(h.closed("reset again"), ["event reconnecting 3: reset again"]);
    assert_eq!(h.status(), ClientStatus::Connecting);
    h.check_delay(3);
    h.wait_for_deadline();
    assert_eq!(h.tick(), ["dial"]);
    assert_eq!(h.opened(), lines!["event connect", sent_link("simon", None)]);
}

#[test]
fn stale_link_retries_give_up_with_a_rejection_on_the_open_connection() {
    let mut h = Harness::reconnecting(policy(2));
    h.linked("simon", None);
    h.closed("reset");
    h.wait_for_deadline();
    h.tick();
    h.opened();
    assert_eq!(h.frame(&rejected(&stale("simon"))), [format!("event reconnecting 2: {}", stale("simon"))]);
    h.wait_for_deadline();
    assert_eq!(h.tick(), [sent_link("simon", None)]);
    assert_eq!(h.frame(&rejected(&stale("simon"))), [format!("event reject {}", stale("simon"))]);
    assert_eq!(h.status(), ClientStatus::Connected);
    assert_eq!(h.core.next_deadline(), None);
    // The link intent is gone: a later drop reconnects without re-linking.
    h.closed("reset");
    h.wait_for_deadline();
    h.tick();
    assert_eq!(h.opened(), ["event connect", "event reconnect"]);
}

#[test]
fn another_rejection_while_relinking_ends_the_reconnect() {
    for reason in ["authentication failed", &stale("lisa"), "invalid username"] {
        let mut h = Harness::reconnecting(policy(0));
        h.linked("simon", None);
        h.closed("reset");
        h.wait_for_deadline();
        h.tick();
        h.opened();
        assert_eq!(h.frame(&rejected(reason)), [format!("event reject {reason}")]);
        assert_eq!(h.status(), ClientStatus::Connected);
        assert_eq!(h.core.next_deadline(), None);
        assert_eq!(h.core.username(), None);
        // The host may link again; a later drop does not re-link (the intent is gone) and counts
        // from attempt 1.
        assert_eq!(h.closed("reset"), ["event reconnecting 1: reset"]);
        h.wait_for_deadline();
        h.tick();
        assert_eq!(h.opened(), ["event connect", "event reconnect"]);
        assert_eq!(h.link("simon", None), [sent_link("simon", None)]);
    }
}

#[test]
fn a_first_connect_that_fails_closes_without_reconnecting() {
    let mut h = Harness::reconnecting(policy(0));
    h.connect();
    assert_eq!(h.closed("connection refused"), ["event close connection refused"]);
    assert_eq!(h.status(), ClientStatus::Closed);
    assert_eq!(h.core.next_deadline(), None);
    // The same after an earlier connection was open, closed by the host, and connect again.
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", None);
    h.core.disconnect().unwrap();
    h.closed("bye");
    assert_eq!(h.outputs(), NOTHING);
    h.connect();
    assert_eq!(h.closed("no such host"), ["event close no such host"]);
    assert_eq!(h.status(), ClientStatus::Closed);
}

#[test]
fn without_reconnect_a_drop_closes_with_the_transports_why() {
    for status in [ClientStatus::Connected, ClientStatus::Linking, ClientStatus::Linked, ClientStatus::Unlinking] {
        let mut h = in_status(status);
        assert_eq!(h.closed("the server closed the connection"), ["event close the server closed the connection"]);
        assert_eq!(h.status(), ClientStatus::Closed);
        assert_eq!(h.users(), users(&[]));
        assert_eq!(h.core.next_deadline(), None);
    }
}

#[test]
fn disconnect_while_waiting_to_reconnect_closes_at_once() {
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", None);
    h.closed("reset");
    h.core.disconnect().unwrap();
    assert_eq!(h.outputs(), ["event close disconnected by the client"], "nothing open: no close output");
    assert_eq!(h.status(), ClientStatus::Closed);
    assert_eq!(h.core.next_deadline(), None);
    h.now += Duration::from_secs(60);
    assert_eq!(h.tick(), NOTHING);
    assert_eq!(h.closed("late"), NOTHING);
}

#[test]
fn disconnect_while_redialing_closes_then_reports() {
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", None);
    h.closed("reset");
    h.wait_for_deadline();
    assert_eq!(h.tick(), ["dial"]);
    h.core.disconnect().unwrap();
    assert_eq!(h.outputs(), ["close"]);
    assert_eq!(h.status(), ClientStatus::Closing);
    assert_eq!(h.opened(), NOTHING);
    assert_eq!(h.closed("aborted"), ["event close disconnected by the client"]);
    assert_eq!(h.status(), ClientStatus::Closed);
}

#[test]
fn disconnect_while_waiting_to_relink_closes_the_connection() {
    let mut h = Harness::waiting_to_retry_a_stale_relink();
    h.core.disconnect().unwrap();
    assert_eq!(h.outputs(), ["close"]);
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.closed("bye"), ["event close disconnected by the client"]);
}

#[test]
fn unlink_or_leave_by_the_host_ends_the_link_intent() {
    type Action = fn(&mut ClientCore) -> Result<(), ClientActionError>;
    let cases: [(Action, &[String]); 2] =
        [(|c| c.unlink(), &[unlinked("simon")]), (|c| c.leave(), &[unlinked("simon"), left("simon")])];
    for (act, answer) in cases {
        let mut h = Harness::reconnecting(policy(0));
        h.linked("simon", Some("secret"));
        act(&mut h.core).unwrap();
        h.outputs();
        for frame in answer {
            h.frame(frame);
        }
        assert_eq!(h.status(), ClientStatus::Connected);
        assert_eq!(h.closed("reset"), ["event reconnecting 1: reset"]);
        h.wait_for_deadline();
        assert_eq!(h.tick(), ["dial"]);
        assert_eq!(h.opened(), ["event connect", "event reconnect"], "no link frame after {answer:?}");
        assert_eq!(h.status(), ClientStatus::Connected);
    }
    // Also when the drop comes before the server's answer.
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", None);
    h.core.unlink().unwrap();
    h.outputs();
    assert_eq!(h.closed("reset"), ["event reconnecting 1: reset"]);
    h.wait_for_deadline();
    h.tick();
    assert_eq!(h.opened(), ["event connect", "event reconnect"]);
}

#[test]
fn an_unlink_by_the_server_keeps_the_link_intent() {
    // A server that shuts down unlinks every user before it closes (step 9); its users come back.
    let mut h = Harness::reconnecting(policy(0));
    h.linked("simon", None);
    assert_eq!(h.frame(&unlinked("simon")), ["event unlink simon"]);
    assert_eq!(h.frame(&left("simon")), ["event leave simon"]);
    assert_eq!(h.closed("server closed"), ["event reconnecting 1: server closed"]);
    h.wait_for_deadline();
    h.tick();
    assert_eq!(h.opened(), lines!["event connect", sent_link("simon", None)]);
}

#[test]
fn tick_and_deadline_without_a_reconnect_do_nothing() {
    for status in ALL_STATUSES {
        let mut h = in_status(status);
        assert_eq!(h.core.next_deadline(), None);
        h.now += Duration::from_secs(3600);
        assert_eq!(h.tick(), NOTHING);
        assert_eq!(h.status(), status);
    }
}

// ---- ReconnectPolicy::delay and the jitter ----

#[test]
fn delay_stays_within_half_and_full_backoff() {
    let p = policy(0);
    for (attempt, backoff) in [(0, 100), (1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (6, 1000), (33, 1000), (u32::MAX, 1000)] {
        let backoff = backoff * MS;
        for random in [0, 1, 7, 12_345_678_901, u64::MAX / 3, u64::MAX - 1, u64::MAX] {
            let delay = p.delay(attempt, random);
            assert!(delay >= backoff / 2 && delay <= backoff, "attempt {attempt} random {random}: {delay:?}");
        }
        // The two ends: no jitter, and all of it.
        let half_nanos = (backoff / 2).as_nanos() as u64;
        assert_eq!(p.delay(attempt, 0), backoff / 2, "attempt {attempt}");
        assert_eq!(p.delay(attempt, half_nanos), backoff, "attempt {attempt}");
        assert_eq!(p.delay(attempt, half_nanos + 1), backoff / 2, "attempt {attempt}");
    }
}

#[test]
fn delay_is_capped_at_max_delay_and_never_overflows() {
    let cases = [
        (Duration::ZERO, Duration::ZERO, Duration::ZERO),
        (Duration::ZERO, Duration::from_secs(10), Duration::ZERO),
        (3 * NS, 3 * NS, 3 * NS),
        (Duration::from_secs(1), Duration::from_secs(1), Duration::from_secs(1)),
        (Duration::from_secs(5), Duration::from_secs(2), Duration::from_secs(2)),
        // Very large bounds: the backoff saturates instead of overflowing.
        (Duration::from_secs(60), Duration::MAX, Duration::from_secs(60) * (1 << 31)),
        (Duration::from_secs(u64::MAX / 4), Duration::MAX, Duration::MAX),
        (Duration::MAX, Duration::MAX, Duration::MAX),
        (Duration::from_millis(u32::MAX.into()), Duration::from_millis(u32::MAX.into()), Duration::from_millis(u32::MAX.into())),
    ];
    for (min_delay, max_delay, last_backoff) in cases {
        let p = ReconnectPolicy { min_delay, max_delay, max_attempts: 0 };
        for random in [0, 1, u64::MAX / 2, u64::MAX] {
            for attempt in [40, 1_000, u32::MAX] {
                let delay = p.delay(attempt, random);
                assert!(
                    delay >= last_backoff / 2 && delay <= last_backoff,
                    "{p:?} attempt {attempt} random {random}: {delay:?}"
                );
            }
        }
    }
}

/// The delays of `n` failed attempts with `seed`.
fn delays_with_seed(seed: u64, n: u32) -> Vec<Duration> {
    let mut h = Harness::seeded(policy(0), seed);
    h.connected();
    h.closed("reset");
    for _ in 1..n {
        h.wait_for_deadline();
        h.tick();
        h.closed("refused");
    }
    assert_eq!(h.delays.len(), n as usize);
    for (attempt, delay) in (1..).zip(&h.delays) {
        assert!(*delay >= backoff(attempt) / 2 && *delay <= backoff(attempt), "seed {seed} attempt {attempt}: {delay:?}");
    }
    h.delays
}

#[test]
fn the_same_seed_gives_the_same_delays() {
    for seed in [0, 1, 7, 42, u64::MAX] {
        assert_eq!(delays_with_seed(seed, 8), delays_with_seed(seed, 8), "seed {seed}");
    }
}

#[test]
fn different_seeds_give_different_jitter() {
    let seeds = [0, 1, 2, 3, 6, 7, 42, 43, u64::MAX - 1, u64::MAX];
    let runs: Vec<Vec<Duration>> = seeds.iter().map(|&s| delays_with_seed(s, 4)).collect();
    for i in 0..seeds.len() {
        // Jitter, not a fixed share of the backoff.
        let halves: Vec<Duration> = (1..=4).map(|a| backoff(a) / 2).collect();
        assert_ne!(runs[i], halves, "seed {} gives no jitter", seeds[i]);
        for j in i + 1..seeds.len() {
            assert_ne!(runs[i], runs[j], "seeds {} and {}", seeds[i], seeds[j]);
        }
    }
}
