//! Scenario storm: N clients connect and link at once (at most `--connect-concurrency` handshakes
//! in flight, so that no listen backlog overflows into SYN retries). Each client counts the
//! distinct users it saw in `krmx/linked` until it has all N: the time until every client's table
//! is complete is the figure. Presence traffic grows as N². With `--server-pid` it also reports
//! the server's resident memory before, when all are linked and idle, and at its peak.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::args::Args;
use crate::frame::{self, Frame};
use crate::procstat::{self, CpuMeter};
use crate::report::{self, round};
use crate::wsclient;

pub async fn run(args: &Args) -> Result<Value, String> {
    let url = args.url()?;
    let clients = args.number("clients", 1_000)?.max(1) as usize;
    let timeout = Duration::from_secs(args.number("timeout-s", 900)?);
    let connecting = Arc::new(Semaphore::new(args.number("connect-concurrency", 128)? as usize));
    let pid = args.server_pid()?;
    let rss_before = pid.and_then(|p| procstat::status_kib(p, "VmRSS"));

    let meter = CpuMeter::start(pid);
    let start = Instant::now();
    // Each client reports twice: when it is linked, and when its table is complete.
    let (linked_tx, mut linked_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let (complete_tx, mut complete_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let (stop_tx, stop_rx) = watch::channel(false);
    for i in 0..clients {
        let (url, connecting, linked_tx, complete_tx, mut stop_rx) =
            (url.clone(), connecting.clone(), linked_tx.clone(), complete_tx.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.expect("semaphore open");
            let linked = wsclient::connect_and_link(&url, &format!("u{i}")).await;
            drop(permit);
            let mut ws = match linked {
                Ok(ws) => ws,
                Err(e) => {
                    let _ = linked_tx.send(Err(e.clone()));
                    let _ = complete_tx.send(Err(e));
                    return;
                }
            };
            let _ = linked_tx.send(Ok(start.elapsed()));
            let mut seen = vec![false; clients];
            let mut distinct = 0;
            let mut reported = false;
            // Reads until told to stop: pings keep being answered while the server is measured idle.
            loop {
                let text = tokio::select! {
                    _ = stop_rx.changed() => break,
                    text = wsclient::next_text(&mut ws) => text,
                };
                let Some(text) = text else {
                    if !reported {
                        let _ = complete_tx.send(Err(format!("u{i}: closed with {distinct} users known")));
                    }
                    return;
                };
                if let Frame::Linked(name) = frame::classify(&text) {
                    if let Some(n) = name.strip_prefix('u').and_then(|n| n.parse::<usize>().ok()) {
                        if n < clients && !seen[n] {
                            seen[n] = true;
                            distinct += 1;
                        }
                    }
                    if distinct == clients && !reported {
                        reported = true;
                        let _ = complete_tx.send(Ok(start.elapsed()));
                    }
                }
            }
        });
    }
    drop((linked_tx, complete_tx));

    let waited = async {
        let mut all_linked = Duration::ZERO;
        for _ in 0..clients {
            all_linked = all_linked.max(linked_rx.recv().await.ok_or("a client task ended")??);
        }
        let mut all_complete = Duration::ZERO;
        for _ in 0..clients {
            all_complete = all_complete.max(complete_rx.recv().await.ok_or("a client task ended")??);
        }
        Ok::<_, String>((all_linked, all_complete))
    };
    let (all_linked, all_complete) =
        tokio::time::timeout(timeout, waited).await.map_err(|_| format!("timed out after {timeout:?}"))??;
    let mut line = json!({
        "scenario": "storm",
        "clients": clients,
        "linked_s": round(all_linked.as_secs_f64()),
        "complete_s": round(all_complete.as_secs_f64()),
        "presence_per_s": round((clients * clients) as f64 / all_complete.as_secs_f64()),
    });
    report::add_cpu(line.as_object_mut().expect("object"), &meter);
    if let Some(pid) = pid {
        // Idle first: queues drained, allocator settled (krmx-native returns a burst's freed heap
        // within 2 s; Node's collector runs on its own schedule), as a server holding idle
        // connections would be measured.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_linked = procstat::status_kib(pid, "VmRSS");
        let map = line.as_object_mut().expect("object");
        map.insert("rss_before_kib".into(), json!(rss_before));
        map.insert("rss_linked_kib".into(), json!(rss_linked));
        map.insert("rss_peak_kib".into(), json!(procstat::status_kib(pid, "VmHWM")));
        if let (Some(before), Some(after)) = (rss_before, rss_linked) {
            map.insert("rss_per_conn_kib".into(), json!(round((after as f64 - before as f64) / clients as f64)));
        }
    }
    let _ = stop_tx.send(true);
    Ok(line)
}
