//! What /proc says about a process (CPU time, memory), and the fd limit this process needs.

use std::time::Instant;

/// Raises RLIMIT_NOFILE to its hard limit: 5,000 loopback clients need 5,000 fds here (and as
/// many in the server).
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// User plus system CPU seconds of process `pid` ("self" for this one), from /proc/PID/stat.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of proc(5) (utime, stime); `fields` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / per_second)
}

/// Nanoseconds the threads of process `pid` spent runnable but waiting for a CPU (the second
/// field of /proc/PID/task/TID/schedstat, summed over the threads alive now). On a shared machine
/// this tells "slow because busy" from "slow because another process had the core".
pub fn run_delay_ns(pid: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
        total += stat.split_whitespace().nth(1).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    }
    Some(total)
}

/// A line of /proc/PID/status in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU used by the server and by this generator over one scenario, and time they waited for a
/// CPU, as shares of wall time (1.0 = one core all the time).
pub struct CpuMeter {
    server_pid: Option<String>,
    server_start: Option<f64>,
    own_start: Option<f64>,
    server_wait_start: Option<u64>,
    own_wait_start: Option<u64>,
    start: Instant,
}

/// Shares of wall time over a scenario.
pub struct Shares {
    pub server_cpu: Option<f64>,
    pub server_wait: Option<f64>,
    pub own_cpu: Option<f64>,
    pub own_wait: Option<f64>,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        let server_pid = server_pid.map(|p| p.to_string());
        CpuMeter {
            server_start: server_pid.as_deref().and_then(cpu_seconds),
            server_wait_start: server_pid.as_deref().and_then(run_delay_ns),
            own_start: cpu_seconds("self"),
            own_wait_start: run_delay_ns("self"),
            server_pid,
            start: Instant::now(),
        }
    }

    /// The shares so far; None where /proc could not tell.
    pub fn shares(&self) -> Shares {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let pid = self.server_pid.as_deref();
        let cpu = |end: Option<f64>, start: Option<f64>| Some((end? - start?) / wall);
        let wait = |end: Option<u64>, start: Option<u64>| Some(end?.saturating_sub(start?) as f64 / 1e9 / wall);
        Shares {
            server_cpu: cpu(pid.and_then(cpu_seconds), self.server_start),
            server_wait: wait(pid.and_then(run_delay_ns), self.server_wait_start),
            own_cpu: cpu(cpu_seconds("self"), self.own_start),
            own_wait: wait(run_delay_ns("self"), self.own_wait_start),
        }
    }
}
