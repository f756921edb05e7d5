//! Property test of the server and client state machines together: one `ServerCore`, a few
//! `ClientCore`s, each client reading exactly the frames the server sent to its connection, in
//! order, and the server reading exactly the client's. Random steps drive both sides through their
//! APIs: clients connect, link, unlink, leave, send and disconnect; the network drops connections
//! and refuses dials; the host joins, unlinks, kicks, sends, broadcasts and answers
//! authentications; time passes (authentication timeouts, reconnect backoff).
//!
//! When every frame has been delivered, each linked client's user table must equal the server's
//! (same names, same linked flags, same join order), a client must be linked exactly when the
//! server links its connection to its username, and links must be one-to-one. Every sequence ends
//! with everything closed or gone, and then the server must hold nothing.
//!
//! Short run: part of `cargo test`. Long run and replay: see tests/fuzz/mod.rs.

mod fuzz;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fuzz::{config, json_value};
use krmx::proto::server::UsernameRule;
use krmx::proto::{
    ClientCore, ClientCoreConfig, ClientOutput, ClientStatus, ConnectionId, Message, Output, ReconnectPolicy,
    ServerCore, ServerCoreConfig, ServerEvent,
};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Valid names first; then names the default rule refuses, which a server with a rule that accepts
/// any name links: frames must still be valid JSON, and the tables must still agree.
const USERNAMES: &[&str] = &["alice", "bob", "carol", "dave", "x", "", "q\"u\\ote", "\u{fc}n\u{ef} \u{2603}", "krmx/x"];
const PEERS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    Connect(usize),
    Link { peer: usize, user: usize, auth: Option<String> },
    Unlink(usize),
    Leave(usize),
    SendMessage { peer: usize, kind: &'static str, payload: Option<Value> },
    Disconnect(usize),
    /// The transport fails: the server sees the connection close, the client sees it drop.
    Drop(usize),
    /// The client sees its connection drop, but the server does not notice until `ServerNotices`
    /// (a half-open TCP connection): a reconnecting client finds its user still linked.
    HalfDrop(usize),
    /// The server notices every half-open connection and closes it.
    ServerNotices,
    /// The peer's next dial fails.
    RefuseNextDial(usize),
    /// Delivers up to `count` queued frames from the server to the peer (interleaved mode only).
    DeliverToClient { peer: usize, count: usize },
    /// Delivers up to `count` queued frames from the peer to the server (interleaved mode only).
    DeliverToServer { peer: usize, count: usize },
    /// Delivers every frame on the wire (interleaved mode only), so that the wire is quiet.
    DeliverAll,
    HostJoin(usize),
    HostUnlink(usize),
    HostKick(usize),
    HostSend(usize),
    HostBroadcast(Option<usize>),
    /// Answers the `index`-th authentication request the host has seen (stale ones are refused).
    Authenticate { index: usize, accept: bool },
    AdvanceMillis(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let peer = 0..PEERS;
    let user = prop_oneof![6 => 0..4usize, 1 => 0..USERNAMES.len()];
    prop_oneof![
        6 => peer.clone().prop_map(Step::Connect),
        16 => (peer.clone(), user.clone(), proptest::option::of("[a-c]")).prop_map(|(peer, user, auth)| Step::Link { peer, user, auth }),
        3 => peer.clone().prop_map(Step::Unlink),
        3 => peer.clone().prop_map(Step::Leave),
        6 => (peer.clone(), prop_oneof![Just("chat"), Just("krmx/link"), Just("krmx/unlink")], proptest::option::of(json_value()))
            .prop_map(|(peer, kind, payload)| Step::SendMessage { peer, kind, payload }),
        1 => peer.clone().prop_map(Step::Disconnect),
        1 => peer.clone().prop_map(Step::Drop),
        1 => peer.clone().prop_map(Step::HalfDrop),
        1 => Just(Step::ServerNotices),
        1 => peer.clone().prop_map(Step::RefuseNextDial),
        10 => (peer.clone(), 1..6usize).prop_map(|(peer, count)| Step::DeliverToClient { peer, count }),
        10 => (peer.clone(), 1..3usize).prop_map(|(peer, count)| Step::DeliverToServer { peer, count }),
        4 => Just(Step::DeliverAll),
        2 => user.clone().prop_map(Step::HostJoin),
        2 => user.clone().prop_map(Step::HostUnlink),
        2 => user.clone().prop_map(Step::HostKick),
        2 => user.clone().prop_map(Step::HostSend),
        2 => proptest::option::of(user).prop_map(Step::HostBroadcast),
        6 => (any::<usize>(), prop::bool::weighted(0.75)).prop_map(|(index, accept)| Step::Authenticate { index, accept }),
        4 => prop_oneof![0u64..300, 300u64..6_000].prop_map(Step::AdvanceMillis),
    ]
}

/// How each client is set up: its protocol version and its reconnect policy.
fn peer_config() -> impl Strategy<Value = ClientCoreConfig> {
    let version = prop_oneof![6 => Just("0.5.5"), 1 => Just("0.5.0"), 1 => Just("0.4.0")];
    let reconnect = proptest::option::of((0u32..4).prop_map(|max_attempts| ReconnectPolicy {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_attempts,
    }));
    (version, reconnect, any::<u64>()).prop_map(|(version, reconnect, jitter_seed)| ClientCoreConfig {
        protocol_version: version.to_string(),
        reconnect,
        jitter_seed,
    })
}

/// An action the core may refuse in its current state (a client not yet linked, an unknown user):
/// the refusal is part of the API and tested elsewhere; here only the absence of panics matters.
fn may_refuse<E>(_: Result<(), E>) {}

struct Peer {
    core: ClientCore,
    /// The server's id of this client's open connection.
    connection: Option<ConnectionId>,
    refuse_dials: usize,
    /// Frames on the wire, in order.
    to_client: VecDeque<Bytes>,
    to_server: VecDeque<Bytes>,
}

#[derive(Debug, Clone, Copy)]
struct ServerSetup {
    authenticate: bool,
    accept_new_users: bool,
    /// A username rule that accepts any name.
    any_username: bool,
    max_users: usize,
    /// Closes connections left unlinked this long.
    link_timeout: Option<Duration>,
}

fn server_setup() -> impl Strategy<Value = ServerSetup> {
    let max_users = prop_oneof![3 => Just(usize::MAX), 1 => 1usize..4];
    let link_timeout = proptest::option::weighted(0.3, Just(Duration::from_secs(3)));
    (prop::bool::weighted(0.3), prop::bool::weighted(0.9), prop::bool::weighted(0.3), max_users, link_timeout).prop_map(
        |(authenticate, accept_new_users, any_username, max_users, link_timeout)| ServerSetup {
            authenticate,
            accept_new_users,
            any_username,
            max_users,
            link_timeout,
        },
    )
}

struct World {
    server: ServerCore,
    peers: Vec<Peer>,
    now: Instant,
    next_connection: ConnectionId,
    /// Connections the server still holds but no client has (see `Step::HalfDrop`).
    half_open: Vec<ConnectionId>,
    /// Every authentication request the host has been asked, in order.
    auth_requests: Vec<u64>,
    /// Frames are delivered as soon as they are sent; otherwise only by the Deliver steps (and at
    /// the end of the sequence), so that frames cross on the wire.
    deliver_at_once: bool,
}

impl World {
    fn new(configs: Vec<ClientCoreConfig>, server: ServerSetup, deliver_at_once: bool) -> Self {
        let any_name: UsernameRule = Box::new(|_: &str| true);
        let mut server = ServerCore::new(ServerCoreConfig {
            authenticate: server.authenticate,
            accept_new_users: server.accept_new_users,
            auth_timeout: Duration::from_secs(5),
            username_rule: server.any_username.then_some(any_name),
            max_users: server.max_users,
            link_timeout: server.link_timeout,
            ..ServerCoreConfig::default()
        });
        server.starting().unwrap();
        server.listening(8082);
        let peers = configs
            .into_iter()
            .map(|config| Peer {
                core: ClientCore::new(config),
                connection: None,
                refuse_dials: 0,
                to_client: VecDeque::new(),
                to_server: VecDeque::new(),
            })
            .collect();
        World {
            server,
            peers,
            now: Instant::now(),
            next_connection: 1,
            half_open: Vec::new(),
            auth_requests: Vec::new(),
            deliver_at_once,
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let now = self.now;
        match step {
            Step::Connect(p) => may_refuse(self.peers[*p].core.connect()),
            Step::Link { peer, user, auth } => may_refuse(self.peers[*peer].core.link(USERNAMES[*user], auth.as_deref())),
            Step::Unlink(p) => may_refuse(self.peers[*p].core.unlink()),
            Step::Leave(p) => may_refuse(self.peers[*p].core.leave()),
            Step::SendMessage { peer, kind, payload } => {
                let result = self.peers[*peer].core.send_message(&Message::new(*kind, payload.clone()));
                if kind.starts_with("krmx/") {
                    prop_assert!(result.is_err(), "a client refuses to send a reserved type");
                }
            }
            Step::Disconnect(p) => may_refuse(self.peers[*p].core.disconnect()),
            Step::Drop(p) => {
                let peer = &mut self.peers[*p];
                if let Some(connection) = peer.connection.take() {
                    peer.to_client.clear();
                    peer.to_server.clear();
                    self.server.connection_closed(connection);
                    peer.core.closed("network failure".into(), now);
                }
            }
            Step::HalfDrop(p) => {
                let peer = &mut self.peers[*p];
                if let Some(connection) = peer.connection.take() {
                    peer.to_client.clear();
                    peer.to_server.clear();
                    self.half_open.push(connection);
                    peer.core.closed("network failure".into(), now);
                }
            }
            Step::ServerNotices => {
                for connection in std::mem::take(&mut self.half_open) {
                    self.server.connection_closed(connection);
                }
            }
            Step::RefuseNextDial(p) => self.peers[*p].refuse_dials += 1,
            Step::DeliverToClient { peer, count } => {
                for _ in 0..*count {
                    let peer = &mut self.peers[*peer];
                    let Some(frame) = peer.to_client.pop_front() else { break };
                    peer.core.frame(&frame, now);
                }
            }
            Step::DeliverToServer { peer, count } => {
                for _ in 0..*count {
                    let peer = &mut self.peers[*peer];
                    let Some(frame) = peer.to_server.pop_front() else { break };
                    self.server.frame(peer.connection.unwrap(), &frame, now);
                }
            }
            Step::DeliverAll => self.pump(true)?,
            Step::HostJoin(u) => may_refuse(self.server.join(USERNAMES[*u])),
            Step::HostUnlink(u) => may_refuse(self.server.unlink(USERNAMES[*u])),
            Step::HostKick(u) => may_refuse(self.server.kick(USERNAMES[*u])),
            Step::HostSend(u) => may_refuse(self.server.send(USERNAMES[*u], &Message::new("news", Some(json!(1))))),
            Step::HostBroadcast(skip) => {
                self.server.broadcast(&Message::new("news", None), skip.map(|u| USERNAMES[u])).unwrap();
            }
            Step::Authenticate { index, accept } => {
                if !self.auth_requests.is_empty() {
                    let request = self.auth_requests[index % self.auth_requests.len()];
                    let decision = if *accept { Ok(()) } else { Err(Some("no".into())) };
                    may_refuse(self.server.authenticate(request, decision));
                }
            }
            Step::AdvanceMillis(ms) => {
                self.now += Duration::from_millis(*ms);
                self.server.tick(self.now);
                for peer in &mut self.peers {
                    peer.core.tick(self.now);
                }
            }
        }
        self.pump(self.deliver_at_once)?;
        self.check_links()?;
        if self.wire_is_quiet() {
            self.check_tables(&format!("{step:?}"))?;
        }
        Ok(())
    }

    /// Carries out every output of both sides until none is left; with `deliver`, also delivers
    /// every frame on the wire.
    fn pump(&mut self, deliver: bool) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            let mut progress = false;
            while let Some(output) = self.server.poll_output() {
                progress = true;
                match output {
                    Output::Send { to, frame } => {
                        prop_assert!(Message::parse(&frame).is_some(), "server frame is a message: {:?}", frame);
                        if let Some(peer) = self.peers.iter_mut().find(|p| p.connection == Some(to)) {
                            peer.to_client.push_back(frame);
                        }
                    }
                    Output::Close { connection, .. } => {
                        if let Some(peer) = self.peers.iter_mut().find(|p| p.connection == Some(connection)) {
                            peer.connection = None;
                            peer.to_client.clear();
                            peer.to_server.clear();
                            self.server.connection_closed(connection);
                            peer.core.closed("closed by the server".into(), self.now);
                        } else {
                            self.half_open.retain(|&c| c != connection);
                            self.server.connection_closed(connection);
                        }
                    }
                    Output::Event(ServerEvent::Authenticate { request_id, .. }) => self.auth_requests.push(request_id),
                    Output::Event(_) => {}
                }
            }
            for peer in &mut self.peers {
                while let Some(output) = peer.core.poll_output() {
                    progress = true;
                    match output {
                        ClientOutput::Dial => {
                            prop_assert_eq!(peer.connection, None, "dial while connected");
                            if peer.refuse_dials > 0 {
                                peer.refuse_dials -= 1;
                                peer.core.closed("connection refused".into(), self.now);
                            } else {
                                let connection = self.next_connection;
                                self.next_connection += 1;
                                self.server.connection_opened(connection);
                                peer.connection = Some(connection);
                                peer.core.opened();
                            }
                        }
                        ClientOutput::Send(frame) => {
                            prop_assert!(Message::parse(&frame).is_some(), "client frame is a message: {:?}", frame);
                            // A frame written just before the server closed the connection (the
                            // client heard of the close before this output was carried out) goes
                            // nowhere, as in the runtime. tests/proto_fuzz_client.rs checks that
                            // a client never writes without a connection.
                            if peer.connection.is_some() {
                                peer.to_server.push_back(frame);
                            }
                        }
                        ClientOutput::Close => {
                            if let Some(connection) = peer.connection.take() {
                                peer.to_client.clear();
                                peer.to_server.clear();
                                self.server.connection_closed(connection);
                            }
                            peer.core.closed("closed by the client".into(), self.now);
                        }
                        ClientOutput::Event(_) => {}
                    }
                }
            }
            if deliver {
                for peer in &mut self.peers {
                    while let Some(frame) = peer.to_server.pop_front() {
                        progress = true;
                        self.server.frame(peer.connection.unwrap(), &frame, self.now);
                    }
                    while let Some(frame) = peer.to_client.pop_front() {
                        progress = true;
                        peer.core.frame(&frame, self.now);
                    }
                }
            }
            if !progress {
                return Ok(());
            }
        }
        Err(TestCaseError::fail("the cores keep producing outputs: a loop between client and server"))
    }

    /// Links are one-to-one, on the server and between each client and the server.
    fn check_links(&self) -> Result<(), TestCaseError> {
        for peer in &self.peers {
            let Some(connection) = peer.connection else {
                prop_assert_eq!(peer.core.user_count(), 0, "a client without a connection knows no users");
                continue;
            };
            if let Some(user) = self.server.connection_user(connection) {
                prop_assert_eq!(self.server.user_connection(user), Some(connection));
            }
        }
        for (name, linked) in self.server.users() {
            let connection = self.server.user_connection(name);
            prop_assert_eq!(connection.is_some(), linked);
            if let Some(connection) = connection {
                prop_assert_eq!(self.server.connection_user(connection), Some(name));
                let peers = self.peers.iter().filter(|p| p.connection == Some(connection)).count();
                let half_open = self.half_open.contains(&connection) as usize;
                prop_assert_eq!(peers + half_open, 1, "user {} is linked to one client's connection", name);
            }
        }
        Ok(())
    }

    fn wire_is_quiet(&self) -> bool {
        self.peers.iter().all(|p| p.to_client.is_empty() && p.to_server.is_empty())
    }

    /// With every frame delivered: a client is linked exactly when the server links its connection,
    /// to the same username, and then its user table equals the server's, in join order.
    fn check_tables(&self, after: &str) -> Result<(), TestCaseError> {
        let server_users: Vec<(&str, bool)> = self.server.users().collect();
        for (index, peer) in self.peers.iter().enumerate() {
            let server_user = peer.connection.and_then(|c| self.server.connection_user(c));
            let status = peer.core.status();
            prop_assert_eq!(
                server_user.is_some(),
                status == ClientStatus::Linked,
                "peer {} is {} while the server links it to {:?}, after {}", index, status, server_user, after
            );
            if status == ClientStatus::Linked {
                prop_assert_eq!(peer.core.username(), server_user);
                let users: Vec<(&str, bool)> = peer.core.users().collect();
                prop_assert_eq!(&users, &server_users, "peer {}'s table after {}", index, after);
            } else {
                prop_assert_eq!(peer.core.user_count(), 0, "peer {} is {} yet knows users", index, status);
            }
            prop_assert!(status != ClientStatus::Unlinking, "peer {} still unlinking with every frame delivered", index);
            // Nothing is stuck: a client that waits has something to wait for.
            match status {
                ClientStatus::Linking => prop_assert!(
                    self.server.next_deadline().is_some() || peer.core.next_deadline().is_some(),
                    "peer {} is linking with no authentication pending and no retry due", index
                ),
                ClientStatus::Connecting => prop_assert!(
                    peer.connection.is_none() && peer.core.next_deadline().is_some(),
                    "peer {} is connecting with no reconnect due", index
                ),
                _ => {}
            }
        }
        Ok(())
    }

    /// Everything goes, by every client disconnecting (then the host kicks the users it joined or
    /// that are left unlinked) or by the server closing; then the server holds nothing.
    fn finish(&mut self, close_server: bool) -> Result<(), TestCaseError> {
        self.pump(true)?;
        self.check_tables("delivering every frame")?;
        self.step(&Step::ServerNotices)?;
        if close_server {
            self.server.begin_close().unwrap();
            self.pump(true)?;
            self.server.closed();
            self.pump(true)?;
        } else {
            for peer in &mut self.peers {
                may_refuse(peer.core.disconnect());
            }
            self.pump(true)?;
            prop_assert_eq!(self.server.connection_count(), 0);
            let users: Vec<String> = self.server.users().map(|(n, _)| n.to_string()).collect();
            for user in users {
                self.server.kick(&user).unwrap();
            }
            self.pump(true)?;
        }
        prop_assert_eq!(self.server.user_count(), 0);
        prop_assert_eq!(self.server.connection_count(), 0);
        prop_assert_eq!(self.server.next_deadline(), None);
        prop_assert_eq!(self.server.pending_link_count(), 0);
        prop_assert_eq!(self.server.link_timer_count(), 0);
        for peer in &self.peers {
            prop_assert_eq!(peer.core.user_count(), 0);
            prop_assert!(peer.core.status() != ClientStatus::Linked);
            prop_assert!(peer.to_client.is_empty() && peer.to_server.is_empty());
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Frames are delivered as soon as they are sent: the tables must agree after every step.
    #[test]
    fn clients_mirror_the_server_step_by_step(
        configs in prop::collection::vec(peer_config(), PEERS),
        server in server_setup(),
        steps in prop::collection::vec(step(), 0..120),
        close_server in any::<bool>(),
    ) {
        let mut world = World::new(configs, server, true);
        for step in &steps {
            world.step(step)?;
        }
        world.finish(close_server)?;
    }

    /// Frames cross on the wire (a client unlinks while the server kicks it, and so on): no panic,
    /// links stay one-to-one, and once every frame is delivered the tables agree.
    #[test]
    fn clients_mirror_the_server_once_the_wire_is_quiet(
        configs in prop::collection::vec(peer_config(), PEERS),
        server in server_setup(),
        steps in prop::collection::vec(step(), 0..120),
        close_server in any::<bool>(),
    ) {
        let mut world = World::new(configs, server, false);
        for step in &steps {
            world.step(step)?;
        }
        world.finish(close_server)?;
    }
}


/// The sequence this test found (fixed in the client): the host unlinks alice while her own unlink
/// is on the wire; she hears of it and links again; the server rejects the stale unlink with
/// "unlinked connection", then accepts the link. She must end up linked, as the server says.
#[test]
fn a_client_relinking_while_its_unlink_crosses_the_servers_ends_up_linked() {
    let configs = vec![ClientCoreConfig::default(); PEERS];
    let server = ServerSetup {
        authenticate: false,
        accept_new_users: true,
        any_username: false,
        max_users: usize::MAX,
        link_timeout: None,
    };
    let mut world = World::new(configs, server, false);
    let link = Step::Link { peer: 0, user: 0, auth: None };
    let steps = [
        Step::Connect(0),
        link.clone(),
        Step::DeliverAll,
        Step::HostUnlink(0),
        Step::Unlink(0),
        Step::DeliverToClient { peer: 0, count: 1 },
        link,
        Step::DeliverAll,
    ];
    for step in &steps {
        world.step(step).unwrap_or_else(|e| panic!("after {step:?}: {e}"));
    }
    assert_eq!(world.peers[0].core.status(), ClientStatus::Linked);
    assert_eq!(world.server.connection_user(world.peers[0].connection.unwrap()), Some("alice"));
    world.finish(false).unwrap();
}
