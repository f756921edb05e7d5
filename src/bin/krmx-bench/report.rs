//! Figures for the output line: latency percentiles and rounding.

use serde_json::{json, Map, Value};

use crate::procstat::CpuMeter;

/// The `p`th percentile (0..=100) of `samples`, which it sorts; 0 when empty.
pub fn percentile(samples: &mut [u32], p: f64) -> u32 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// Rounds to 3 significant decimals for readable JSON.
pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Adds to `line`, as shares of one core over the scenario, the CPU the server and this
/// generator used (`server_cpu`, `bench_cpu`) and the time their threads were ready to run but
/// waited for a CPU (`server_wait`, `bench_wait`).
pub fn add_cpu(line: &mut Map<String, Value>, meter: &CpuMeter) {
    let shares = meter.shares();
    line.insert("server_cpu".into(), json!(shares.server_cpu.map(round)));
    line.insert("server_wait".into(), json!(shares.server_wait.map(round)));
    line.insert("bench_cpu".into(), json!(shares.own_cpu.map(round)));
    line.insert("bench_wait".into(), json!(shares.own_wait.map(round)));
}
