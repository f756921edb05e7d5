//! Property test of the client state machine alone, against any server: random host actions,
//! transport news (opened, dropped, refused), time passing, and frames that a server might send,
//! or should never send (protocol messages out of turn, malformed payloads, garbage). The client
//! must never panic, must ask the transport only for what its state allows (dial when idle, send
//! when open), must only write valid frames of its own kinds, must refuse exactly the actions its
//! status forbids, and must keep its user table empty unless linked.
//!
//! Short run: part of `cargo test`. Long run and replay: see tests/fuzz/mod.rs.

mod fuzz;

use std::time::{Duration, Instant};

use fuzz::{config, json_value};
use krmx::proto::{
    ClientActionError, ClientCore, ClientCoreConfig, ClientOutput, ClientStatus, Message, ReconnectPolicy,
};
use proptest::prelude::*;
use serde_json::json;

const USERNAMES: &[&str] = &["alice", "bob", "carol"];

#[derive(Debug, Clone)]
enum Step {
    Connect,
    Link(usize),
    Unlink,
    Leave,
    Send { reserved: bool },
    Disconnect,
    /// The dial in progress succeeds.
    Opened,
    /// The connection drops, or the dial in progress fails.
    Closed,
    Frame(Frame),
    AdvanceMillis(u64),
}

/// A frame's bytes, shown as text in a failure report.
#[derive(Clone)]
struct Frame(Vec<u8>);

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Frames a server sends, in turn or out of turn, well-formed or not.
fn server_frame() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        4 => (0..USERNAMES.len()).prop_map(|u| json!(USERNAMES[u])),
        1 => json_value(),
    ];
    let about = prop_oneof![
        Just("krmx/joined"), Just("krmx/linked"), Just("krmx/unlinked"), Just("krmx/left"),
    ];
    let reason = prop_oneof![
        Just(json!("invalid username")),
        Just(json!("unlinked connection")),
        (0..USERNAMES.len()).prop_map(|u| json!(format!("user {} is already linked to a connection", USERNAMES[u]))),
        json_value(),
    ];
    let message = prop_oneof![
        4 => (about, name).prop_map(|(kind, name)| Message::new(kind, Some(json!({ "username": name })))),
        2 => Just(Message::new("krmx/accepted", None)),
        2 => reason.prop_map(|reason| Message::new("krmx/rejected", Some(json!({ "reason": reason })))),
        1 => (prop_oneof![Just("krmx/joined"), Just("krmx/rejected"), Just("krmx/other")], proptest::option::of(json_value()))
            .prop_map(|(kind, payload)| Message::new(kind, payload)),
        2 => (prop_oneof![Just("chat"), Just("")], proptest::option::of(json_value()))
            .prop_map(|(kind, payload)| Message::new(kind, payload)),
    ];
    prop_oneof![
        8 => message.prop_map(|m| m.to_frame().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Connect),
        4 => (0..USERNAMES.len()).prop_map(Step::Link),
        1 => Just(Step::Unlink),
        1 => Just(Step::Leave),
        2 => any::<bool>().prop_map(|reserved| Step::Send { reserved }),
        1 => Just(Step::Disconnect),
        4 => Just(Step::Opened),
        2 => Just(Step::Closed),
        12 => server_frame().prop_map(|bytes| Step::Frame(Frame(bytes))),
        2 => prop_oneof![0u64..200, 200u64..3_000].prop_map(Step::AdvanceMillis),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Idle,
    Dialing,
    Open,
}

struct Run {
    core: ClientCore,
    transport: Transport,
    now: Instant,
}

impl Run {
    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let status = self.core.status();
        let refused = |result: Result<(), ClientActionError>| matches!(result, Err(ClientActionError::WrongStatus { .. }));
        match step {
            Step::Connect => {
                let may = matches!(status, ClientStatus::Initializing | ClientStatus::Closed);
                prop_assert_eq!(refused(self.core.connect()), !may, "connect when {}", status);
            }
            Step::Link(user) => {
                let may = status == ClientStatus::Connected;
                prop_assert_eq!(refused(self.core.link(USERNAMES[*user], None)), !may, "link when {}", status);
            }
            Step::Unlink => prop_assert_eq!(refused(self.core.unlink()), status != ClientStatus::Linked),
            Step::Leave => prop_assert_eq!(refused(self.core.leave()), status != ClientStatus::Linked),
            Step::Send { reserved } => {
                let kind = if *reserved { "krmx/link" } else { "chat" };
                let result = self.core.send_message(&Message::new(kind, Some(json!([1]))));
                if *reserved {
                    prop_assert_eq!(result, Err(ClientActionError::ReservedType));
                } else {
                    prop_assert_eq!(refused(result), status != ClientStatus::Linked);
                }
            }
            Step::Disconnect => {
                let may = !matches!(status, ClientStatus::Initializing | ClientStatus::Closing | ClientStatus::Closed);
                prop_assert_eq!(refused(self.core.disconnect()), !may, "disconnect when {}", status);
            }
            Step::Opened => {
                if self.transport == Transport::Dialing {
                    self.transport = Transport::Open;
                    self.core.opened();
                }
            }
            Step::Closed => {
                if self.transport != Transport::Idle {
                    self.transport = Transport::Idle;
                    self.core.closed("network failure".into(), self.now);
                }
            }
            Step::Frame(frame) => {
                if self.transport == Transport::Open {
                    self.core.frame(&frame.0, self.now);
                }
            }
            Step::AdvanceMillis(ms) => {
                self.now += Duration::from_millis(*ms);
                self.core.tick(self.now);
            }
        }
        self.carry_out()?;
        self.check(step)
    }

    /// Carries out the outputs, checking that each suits the transport's state.
    fn carry_out(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..100 {
            let Some(output) = self.core.poll_output() else { return Ok(()) };
            match output {
                ClientOutput::Dial => {
                    prop_assert_eq!(self.transport, Transport::Idle, "dial while a connection exists");
                    self.transport = Transport::Dialing;
                }
                ClientOutput::Send(frame) => {
                    prop_assert_eq!(self.transport, Transport::Open, "send without an open connection");
                    let message = Message::parse(&frame);
                    prop_assert!(message.is_some(), "the client writes messages: {:?}", frame);
                    let kind = message.unwrap().kind;
                    let own = ["krmx/link", "krmx/unlink", "krmx/leave"].contains(&kind.as_str()) || kind == "chat";
                    prop_assert!(own, "the client writes only its own kinds: {}", kind);
                }
                ClientOutput::Close => {
                    prop_assert!(self.transport != Transport::Idle, "close without a connection");
                    // The transport closes, and says so.
                    self.transport = Transport::Idle;
                    self.core.closed("closed".into(), self.now);
                }
                ClientOutput::Event(_) => {}
            }
        }
        Err(TestCaseError::fail("more than 100 outputs from one step"))
    }

    fn check(&self, after: &Step) -> Result<(), TestCaseError> {
        let status = self.core.status();
        let linked = matches!(status, ClientStatus::Linked | ClientStatus::Unlinking);
        prop_assert!(linked || self.core.user_count() == 0, "{} with users {:?} after {:?}", status, self.core.users().collect::<Vec<_>>(), after);
        if self.core.username().is_some() {
            prop_assert!(linked || status == ClientStatus::Linking, "a username while {}", status);
        }
        if status == ClientStatus::Linked {
            prop_assert!(self.core.username().is_some(), "linked without a username");
        }
        match status {
            ClientStatus::Initializing | ClientStatus::Closed => prop_assert_eq!(self.transport, Transport::Idle),
            ClientStatus::Connected | ClientStatus::Linking | ClientStatus::Linked | ClientStatus::Unlinking => {
                prop_assert_eq!(self.transport, Transport::Open, "{} needs an open connection", status)
            }
            ClientStatus::Connecting => prop_assert!(
                self.transport == Transport::Dialing || self.core.next_deadline().is_some(),
                "connecting with neither a dial nor a reconnect due"
            ),
            ClientStatus::Closing => prop_assert!(self.transport != Transport::Idle),
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn the_client_core_survives_any_server(
        reconnect in proptest::option::of((0u32..4).prop_map(|max_attempts| ReconnectPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts,
        })),
        steps in prop::collection::vec(step(), 0..100),
    ) {
        let core = ClientCore::new(ClientCoreConfig { reconnect, ..ClientCoreConfig::default() });
        let mut run = Run { core, transport: Transport::Idle, now: Instant::now() };
        for step in &steps {
            run.step(step)?;
        }
    }
}

