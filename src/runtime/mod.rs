//! The I/O side: one lazily started tokio runtime for every handle in the process. It accepts,
//! reads, writes, pings and keeps handshake and liveness timers; it never runs protocol logic.

pub mod admission;
pub mod connection;
pub mod dialer;
pub mod echo;
pub mod frame;
pub mod inbox;
pub mod listener;
pub mod outbox;
pub mod signal;
pub mod socket_io;
pub mod tasks;
mod trim;

use std::sync::LazyLock;

use tokio::runtime::{Builder, Runtime};

/// Worker threads of the shared runtime: `KRMX_RUNTIME_THREADS`, else up to 2 (the I/O is light;
/// the protocol runs on the host's thread).
fn worker_threads() -> usize {
    std::env::var("KRMX_RUNTIME_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(2)))
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name("krmx-io")
        .enable_io()
        .enable_time()
        .build()
        .map(|runtime| {
            runtime.spawn(trim::give_back_free_memory());
            runtime
        })
        .expect("the krmx I/O runtime could not start")
});

/// The process-wide runtime, started on first use.
pub fn runtime() -> &'static Runtime {
    &RUNTIME
}
