//! Scenario fanout: N linked receivers and one sender; the sender sends M messages, the server
//! broadcasts each to everyone. With `--window W` (W > 0) the sender has at most W messages in
//! flight: it waits for its own echo before sending more. Without a window it sends as fast as
//! its socket takes them, and the server's queues absorb the difference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::frame::{self, Frame};
use crate::procstat::CpuMeter;
use crate::report::{self, percentile, round};
use crate::{clock, wsclient};

const SENDER: &str = "sender";

pub async fn run(args: &Args) -> Result<Value, String> {
    let url = args.url()?;
    let receivers = args.number("clients", 100)?.max(1);
    let count = args.number("count", 2_000)?;
    let window = args.number("window", 0)?;
    let timeout = Duration::from_secs(args.number("timeout-s", 300)?);
    let connecting = Arc::new(Semaphore::new(args.number("connect-concurrency", 128)? as usize));

    // Receivers link first; each reads from the moment it is linked (presence included).
    let (linked_tx, mut linked_rx) = mpsc::channel::<Result<(), String>>(receivers as usize);
    let mut tasks = Vec::new();
    for i in 0..receivers {
        let (url, connecting, linked_tx) = (url.clone(), connecting.clone(), linked_tx.clone());
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.expect("semaphore open");
            let ws = wsclient::connect_and_link(&url, &format!("r{i}")).await;
            drop(permit);
            let ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    let _ = linked_tx.send(Err(e.clone())).await;
                    return Err(e);
                }
            };
            let _ = linked_tx.send(Ok(())).await;
            receive(ws, count).await
        }));
    }
    drop(linked_tx);
    for _ in 0..receivers {
        linked_rx.recv().await.ok_or("a receiver task ended")??;
    }

    let sender = wsclient::connect_and_link(&url, SENDER).await?;
    let meter = CpuMeter::start(args.server_pid()?);
    let start = Instant::now();
    let send_task = tokio::spawn(send(sender, count, window));
    let mut latencies = Vec::with_capacity((receivers * count) as usize);
    // Sockets stay open until the end: a receiver that closed early would make the server
    // broadcast its unlink to everyone still measuring.
    let mut open = Vec::with_capacity(receivers as usize);
    let all = async {
        for task in tasks {
            let (samples, ws) = task.await.map_err(|e| e.to_string())??;
            latencies.extend(samples);
            open.push(ws);
        }
        open.push(send_task.await.map_err(|e| e.to_string())??);
        Ok::<_, String>(())
    };
    tokio::time::timeout(timeout, all).await.map_err(|_| format!("timed out after {timeout:?}"))??;
    let seconds = start.elapsed().as_secs_f64();
    let deliveries = latencies.len() as f64;
    let mut line = json!({
        "scenario": "fanout",
        "clients": receivers,
        "count": count,
        "window": window,
        "seconds": round(seconds),
        "deliveries_per_s": round(deliveries / seconds),
        "latency_p50_us": percentile(&mut latencies, 50.0),
        "latency_p99_us": percentile(&mut latencies, 99.0),
    });
    report::add_cpu(line.as_object_mut().expect("object"), &meter);
    Ok(line)
}

/// Reads until all `count` messages of the sender arrived; returns their delivery latencies in
/// microseconds (send time to receipt), and the still open socket.
async fn receive(mut ws: wsclient::Ws, count: u64) -> Result<(Vec<u32>, wsclient::Ws), String> {
    let mut latencies = Vec::with_capacity(count as usize);
    while (latencies.len() as u64) < count {
        let text = wsclient::next_text(&mut ws).await.ok_or("a receiver's connection closed")?;
        if let Frame::Bench { sender: SENDER, sent_us, .. } = frame::classify(&text) {
            latencies.push((clock::now_us() - sent_us) as u32);
        }
    }
    Ok((latencies, ws))
}

/// Sends `count` messages, at most `window` unanswered (0: no limit), and reads its own echoes.
async fn send(ws: wsclient::Ws, count: u64, window: u64) -> Result<wsclient::Ws, String> {
    let (mut sink, mut stream) = ws.split();
    let credit = Arc::new(Semaphore::new(if window == 0 { Semaphore::MAX_PERMITS } else { window as usize }));
    let echoes = {
        let credit = credit.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            while seen < count {
                let text = wsclient::next_text(&mut stream).await.ok_or("the sender's connection closed")?;
                if let Frame::Bench { sender: SENDER, .. } = frame::classify(&text) {
                    seen += 1;
                    credit.add_permits(1);
                }
            }
            Ok::<_, String>(stream)
        })
    };
    for seq in 0..count {
        credit.acquire().await.expect("semaphore open").forget();
        sink.send(Message::text(frame::bench_message(SENDER, seq))).await.map_err(|e| format!("send: {e}"))?;
    }
    let stream = echoes.await.map_err(|e| e.to_string())??;
    sink.reunite(stream).map_err(|e| e.to_string())
}
