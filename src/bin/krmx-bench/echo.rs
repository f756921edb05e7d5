//! Scenario echo: C linked clients each send a message and wait for its echo, K times.
//! A relay broadcasts every message to every linked user, so each client also reads the other
//! clients' messages (C² deliveries per round); with one client it is a plain echo.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::frame::{self, Frame};
use crate::procstat::CpuMeter;
use crate::report::{self, percentile, round};
use crate::{clock, wsclient};

pub async fn run(args: &Args) -> Result<Value, String> {
    let url = args.url()?;
    let clients = args.number("clients", 1)?.max(1);
    let count = args.number("count", 10_000)?;
    let timeout = Duration::from_secs(args.number("timeout-s", 300)?);

    let mut sockets = Vec::new();
    for i in 0..clients {
        sockets.push((format!("e{i}"), wsclient::connect_and_link(&url, &format!("e{i}")).await?));
    }
    let meter = CpuMeter::start(args.server_pid()?);
    let start = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|(name, ws)| tokio::spawn(tokio::time::timeout(timeout, echo_loop(name, ws, count))))
        .collect();
    let mut rtts = Vec::new();
    for task in tasks {
        let samples = task.await.map_err(|e| e.to_string())?.map_err(|_| "timed out".to_string())??;
        rtts.extend(samples);
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut line = json!({
        "scenario": "echo",
        "clients": clients,
        "count": count,
        "seconds": round(seconds),
        "msgs_per_s": round(rtts.len() as f64 / seconds),
        "deliveries_per_s": round((rtts.len() as u64 * clients) as f64 / seconds),
        "rtt_p50_us": percentile(&mut rtts, 50.0),
        "rtt_p99_us": percentile(&mut rtts, 99.0),
    });
    report::add_cpu(line.as_object_mut().expect("object"), &meter);
    Ok(line)
}

/// Sends `count` messages one at a time, each after the echo of the previous one; returns the
/// round-trip times in microseconds.
async fn echo_loop(name: String, mut ws: wsclient::Ws, count: u64) -> Result<Vec<u32>, String> {
    let mut rtts = Vec::with_capacity(count as usize);
    for seq in 0..count {
        ws.send(Message::text(frame::bench_message(&name, seq))).await.map_err(|e| format!("{name}: {e}"))?;
        loop {
            let text = wsclient::next_text(&mut ws).await.ok_or_else(|| format!("{name}: closed"))?;
            if let Frame::Bench { sender, seq: got, sent_us } = frame::classify(&text) {
                if sender == name && got == seq {
                    rtts.push((clock::now_us() - sent_us) as u32);
                    break;
                }
            }
        }
    }
    Ok(rtts)
}
