//! A soak: many clients (ours, over real sockets on 127.0.0.1) link, chat, drop, leave, come back
//! and chat again against one server for a while; then every count is reconciled. The host echoes
//! every message to its sender, and a client only churns once all its echoes are back, so:
//! messages sent = messages the host received = echoes sent = echoes received, exactly; and at the
//! end every client's user table equals the server's.
//!
//! The short run is part of the suite. The long run is its own command (README, "Soak"):
//! `KRMX_SOAK_CLIENTS=300 KRMX_SOAK_SECONDS=180 cargo test --release --test soak -- --ignored --nocapture`

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krmx::{Client, ClientConfig, ClientEvent, ClientStatus, Message, Server, ServerConfig, ServerEvent};
use serde_json::json;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    echoes_received: AtomicU64,
    host_received: AtomicU64,
    echoes_sent: AtomicU64,
    echoes_refused: AtomicU64,
    drops: AtomicU64,
    leaves: AtomicU64,
    unlinks: AtomicU64,
    stale_link_retries: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A small deterministic random source (xorshift64*), one per driver thread.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Debug, PartialEq)]
enum Phase {
    /// Waiting for the link to be accepted (after a connect, a relink or a retry).
    Linking,
    /// Linked: `to_send` more messages, then wait for every echo.
    Chatting { to_send: u32 },
    /// Unlinked on purpose; links again on the next turn.
    Unlinked,
}

struct Player {
    name: String,
    client: Client,
    phase: Phase,
    /// Sent and not yet echoed back.
    in_flight: u64,
    next_sequence: u64,
}

fn new_client(url: &str) -> Client {
    let client = Client::new(ClientConfig::default());
    client.connect(url).expect("a valid URL");
    client
}

impl Player {
    fn new(name: String, url: &str) -> Player {
        Player { name, client: new_client(url), phase: Phase::Linking, in_flight: 0, next_sequence: 0 }
    }

    /// Handles every event waiting for this client.
    fn drain(&mut self, counts: &Counts) {
        while let Some(event) = self.client.poll(Some(Duration::ZERO)) {
            match event {
                ClientEvent::Connect => self.client.link(&self.name, None).expect("link after connect"),
                ClientEvent::Accept => self.phase = Phase::Chatting { to_send: 0 },
                ClientEvent::Reject { reason } => {
                    // The server has not yet seen this user's previous connection close.
                    assert_eq!(reason, format!("user {} is already linked to a connection", self.name));
                    add(&counts.stale_link_retries);
                    std::thread::sleep(Duration::from_millis(2));
                    self.client.link(&self.name, None).expect("link again");
                }
                ClientEvent::Message { message } => {
                    assert_eq!(message.kind, "soak/echo");
                    self.in_flight -= 1;
                    add(&counts.echoes_received);
                }
                ClientEvent::Close { why } => panic!("{}: closed unexpectedly: {why}", self.name),
                _ => {}
            }
        }
    }

    /// One turn: send a message, or, with every echo back, churn.
    fn turn(&mut self, url: &str, random: &mut Random, counts: &Counts, churn: bool) {
        self.drain(counts);
        match self.phase {
            Phase::Linking => {}
            // Once the server has confirmed the unlink or the leave.
            Phase::Unlinked if self.client.status() == ClientStatus::Connected => {
                self.client.link(&self.name, None).expect("relink");
                self.phase = Phase::Linking;
            }
            Phase::Unlinked => {}
            Phase::Chatting { to_send: 0 } if self.in_flight == 0 && churn => match random.below(4) {
                0 => {
                    // Dropped: the game quits without a word, and a new one links as the same user.
                    self.client = new_client(url);
                    self.phase = Phase::Linking;
                    add(&counts.drops);
                }
                1 => {
                    self.client.leave().expect("leave while linked");
                    self.phase = Phase::Unlinked;
                    add(&counts.leaves);
                }
                2 => {
                    self.client.unlink().expect("unlink while linked");
                    self.phase = Phase::Unlinked;
                    add(&counts.unlinks);
                }
                _ => self.phase = Phase::Chatting { to_send: 1 + random.below(20) as u32 },
            },
            Phase::Chatting { to_send: 0 } => {
                if churn {
                    return;
                }
            }
            Phase::Chatting { ref mut to_send } => {
                let message = Message::custom("soak/say", Some(json!({ "n": self.next_sequence }))).unwrap();
                self.client.send(&message).expect("send while linked");
                self.next_sequence += 1;
                self.in_flight += 1;
                *to_send -= 1;
                add(&counts.sent);
            }
        }
    }

    fn is_settled(&self) -> bool {
        matches!(self.phase, Phase::Chatting { .. }) && self.in_flight == 0 && self.client.status() == ClientStatus::Linked
    }
}

/// The host: echoes every message to its sender.
fn run_host(server: Arc<Server>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let echo = Message::custom("soak/echo", None).unwrap();
    while !stop.load(Ordering::SeqCst) {
        if let Some(ServerEvent::Message { username, message }) = server.poll(Some(Duration::from_millis(20))) {
            assert_eq!(message.kind, "soak/say");
            add(&counts.host_received);
            match server.send(&username, &echo) {
                Ok(()) => add(&counts.echoes_sent),
                Err(_) => add(&counts.echoes_refused),
            }
        }
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn soak(clients: usize, duration: Duration) {
    let server = Arc::new(Server::new(ServerConfig::default()));
    let port = server.listen(0).unwrap();
    let url = format!("ws://127.0.0.1:{port}");
    let counts = Arc::new(Counts::default());
    let stop_host = Arc::new(AtomicBool::new(false));
    let host = {
        let (server, counts, stop) = (server.clone(), counts.clone(), stop_host.clone());
        std::thread::spawn(move || run_host(server, counts, stop))
    };
    let started = Instant::now();
    const DRIVERS: usize = 4;
    let drivers: Vec<_> = (0..DRIVERS)
        .map(|d| {
            let (url, counts) = (url.clone(), counts.clone());
            std::thread::spawn(move || {
                let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ (d as u64 + 1));
                let mut players: Vec<Player> =
                    (d..clients).step_by(DRIVERS).map(|i| Player::new(format!("p{i}"), &url)).collect();
                while started.elapsed() < duration {
                    for player in &mut players {
                        player.turn(&url, &mut random, &counts, true);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Wind down: everyone linked again, every echo back.
                let deadline = Instant::now() + Duration::from_secs(60);
                while !players.iter().all(Player::is_settled) {
                    assert!(Instant::now() < deadline, "players did not settle within 60 s");
                    for player in &mut players {
                        player.turn(&url, &mut random, &counts, false);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                players
            })
        })
        .collect();
    let mut players: Vec<Player> = drivers.into_iter().flat_map(|d| d.join().unwrap()).collect();

    // Every client's table equals the server's once the presence traffic has arrived.
    let server_table: BTreeSet<(String, bool)> = server.users().into_iter().map(|u| (u.username, u.is_linked)).collect();
    let everyone: BTreeSet<(String, bool)> = players.iter().map(|p| (p.name.clone(), true)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut disagreeing = players.len();
    while disagreeing > 0 && Instant::now() < deadline {
        disagreeing = 0;
        for player in &mut players {
            player.drain(&counts);
            let table: BTreeSet<(String, bool)> =
                player.client.users().into_iter().map(|u| (u.username, u.is_linked)).collect();
            disagreeing += usize::from(table != server_table);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_host.store(true, Ordering::SeqCst);
    host.join().unwrap();

    let c = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "soak": { "clients": clients, "seconds": started.elapsed().as_secs_f64() },
            "sent": c(&counts.sent), "host_received": c(&counts.host_received),
            "echoes_sent": c(&counts.echoes_sent), "echoes_received": c(&counts.echoes_received),
            "echoes_refused": c(&counts.echoes_refused),
            "drops": c(&counts.drops), "leaves": c(&counts.leaves), "unlinks": c(&counts.unlinks),
            "stale_link_retries": c(&counts.stale_link_retries),
            "peak_rss_kib": peak_rss_kib(),
        })
    );
    assert_eq!(server_table, everyone, "the server's table: every player, linked");
    assert_eq!(disagreeing, 0, "clients whose user table differs from the server's");
    assert!(c(&counts.sent) > 0 && c(&counts.drops) > 0 && c(&counts.leaves) > 0 && c(&counts.unlinks) > 0);
    assert_eq!(c(&counts.host_received), c(&counts.sent), "every message sent reached the host");
    assert_eq!(c(&counts.echoes_refused), 0);
    assert_eq!(c(&counts.echoes_received), c(&counts.echoes_sent), "every echo reached its client");
    assert_eq!(c(&counts.echoes_sent), c(&counts.sent));
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn short_soak_reconciles_every_count() {
    soak(40, Duration::from_secs(4));
}

#[test]
#[ignore = "long: run by the README's soak command"]
fn long_soak_reconciles_every_count() {
    soak(env_or("KRMX_SOAK_CLIENTS", 300) as usize, Duration::from_secs(env_or("KRMX_SOAK_SECONDS", 180)));
}
