//! Scenario host (Rust host): what draining events through the host API costs, without the
//! network in the measured part. One process holds a server and N clients of this library.
//! Phase server: every client sends K messages, the I/O threads queue them (a settle pause), then
//! one thread drains the N·K message events with `Server::poll`. Phase client: the server
//! broadcasts K messages, then one thread drains the N·K events round-robin with `Client::poll`.
//! bench/host_cost.c does exactly the same through the C API (`krmx_server_poll` /
//! `krmx_client_poll`), so the two lines compare the Rust and the C host.

use std::time::{Duration, Instant};

use krmx::{Client, ClientConfig, ClientEvent, ClientStatus, Message, Server, ServerConfig, ServerEvent};
use serde_json::{json, Value};

use crate::args::Args;
use crate::clock;
use crate::report::round;

/// Long enough for the I/O threads to read every queued message before the drain is timed.
const SETTLE: Duration = Duration::from_secs(1);
const SETUP_LIMIT: Duration = Duration::from_secs(30);

pub fn run(args: &Args) -> Result<Value, String> {
    let clients = args.number("clients", 10)?.max(1) as usize;
    let count = args.number("count", 20_000)?;
    let server = Server::new(ServerConfig::default());
    let port = server.listen(0).map_err(|e| e.to_string())?;
    let url = format!("ws://127.0.0.1:{port}");
    let peers: Vec<Client> = (0..clients).map(|_| Client::new(ClientConfig::default())).collect();
    for peer in &peers {
        peer.connect(&url).map_err(|e| e.to_string())?;
    }
    let mut asked = vec![false; clients];
    pump_until(&server, &peers, |peers| {
        for (i, peer) in peers.iter().enumerate() {
            if peer.status() == ClientStatus::Connected && !asked[i] {
                asked[i] = true;
                peer.link(&format!("h{i}"), None).map_err(|e| e.to_string())?;
            }
        }
        Ok(peers.iter().all(|p| p.status() == ClientStatus::Linked && p.user_count() == clients))
    })?;

    for (i, peer) in peers.iter().enumerate() {
        for seq in 0..count {
            peer.send(&message(&format!("h{i}"), seq)?).map_err(|e| e.to_string())?;
        }
    }
    std::thread::sleep(SETTLE);
    let expected = clients as u64 * count;
    let start = Instant::now();
    let mut drained = 0;
    while drained < expected {
        match server.poll(Some(Duration::ZERO)).or_else(|| server.poll(Some(Duration::from_secs(5)))) {
            Some(ServerEvent::Message { .. }) => drained += 1,
            Some(_) => {}
            None => return Err(format!("server: only {drained} of {expected} messages arrived")),
        }
    }
    let server_time = start.elapsed();

    for seq in 0..count {
        server.broadcast(&message("server", seq)?, None).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(SETTLE);
    let start = Instant::now();
    let mut per_client = vec![0u64; clients];
    let mut drained = 0;
    let mut idle_rounds = 0;
    while drained < expected {
        let before = drained;
        for (i, peer) in peers.iter().enumerate() {
            if per_client[i] < count {
                if let Some(ClientEvent::Message { .. }) = peer.poll(Some(Duration::ZERO)) {
                    per_client[i] += 1;
                    drained += 1;
                }
            }
        }
        idle_rounds = if drained == before { idle_rounds + 1 } else { 0 };
        if idle_rounds > 0 {
            std::thread::sleep(Duration::from_millis(1));
            if idle_rounds > 5_000 {
                return Err(format!("clients: only {drained} of {expected} messages arrived"));
            }
        }
    }
    let client_time = start.elapsed();
    let per = |time: Duration| {
        json!({
            "events_per_s": round(expected as f64 / time.as_secs_f64()),
            "ns_per_event": round(time.as_nanos() as f64 / expected as f64),
        })
    };
    Ok(json!({
        "scenario": "host",
        "host": "rust",
        "clients": clients,
        "count": count,
        "events": expected,
        "server_poll": per(server_time),
        "client_poll": per(client_time),
    }))
}

fn message(sender: &str, seq: u64) -> Result<Message, String> {
    Message::custom("bench/m", Some(Value::String(format!("~{sender}~{seq}~{}~", clock::now_us())))).map_err(|e| e.to_string())
}

/// Polls the server and every client (discarding events) until `done` says so.
fn pump_until(
    server: &Server,
    peers: &[Client],
    mut done: impl FnMut(&[Client]) -> Result<bool, String>,
) -> Result<(), String> {
    let start = Instant::now();
    while !done(peers)? {
        if start.elapsed() > SETUP_LIMIT {
            return Err("setup: clients did not all link in time".into());
        }
        while server.poll(Some(Duration::from_millis(1))).is_some() {}
        for peer in peers {
            while peer.poll(Some(Duration::ZERO)).is_some() {}
        }
    }
    Ok(())
}
