//! `krmx-bench`: a load generator for any Krmx server (ours or the npm reference), over real
//! WebSockets on loopback. One scenario per run; the result is one JSON line on stdout.
//! bench/compare.sh starts a fresh server for every run and calls this; docs/performance.md
//! explains the method and the figures.
//!
//!   krmx-bench echo    --url URL [--clients C] [--count K]
//!   krmx-bench fanout  --url URL [--clients N] [--count M] [--window W]
//!   krmx-bench storm   --url URL [--clients N]
//!   krmx-bench host    [--clients N] [--count K]      (in-process Rust host, no URL)
//! Common: --server-pid PID (CPU share and RSS of the server), --label NAME (copied to the output),
//! --timeout-s S (give up after S seconds; the output then says how far it got).

mod args;
mod clock;
mod echo;
mod fanout;
mod frame;
mod host;
mod procstat;
mod report;
mod storm;
mod wsclient;

use args::Args;
use serde_json::Value;

const USAGE: &str = "usage: krmx-bench echo|fanout|storm|host [--url ws://127.0.0.1:PORT] [--clients N] \
[--count K] [--window W] [--server-pid PID] [--label NAME] [--timeout-s S]";

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("krmx-bench: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    procstat::raise_fd_limit();
    let result = match args.scenario.as_str() {
        // The Rust host drives the library's own threads; it needs no generator runtime.
        "host" => host::run(&args),
        scenario => {
            // One thread: the generator stays on the core it is pinned to, and its CPU share
            // says directly whether it is the bottleneck.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            runtime.block_on(async {
                match scenario {
                    "echo" => echo::run(&args).await,
                    "fanout" => fanout::run(&args).await,
                    "storm" => storm::run(&args).await,
                    other => Err(format!("unknown scenario {other:?}")),
                }
            })
        }
    };
    match result {
        Ok(mut line) => {
            if let (Value::Object(map), Some(label)) = (&mut line, &args.label) {
                map.insert("server".into(), Value::String(label.clone()));
            }
            println!("{line}");
        }
        Err(e) => {
            eprintln!("krmx-bench {}: {e}", args.scenario);
            std::process::exit(1);
        }
    }
}
