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

/// A line of /proc/PID/status in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU used by the server and by this generator over one scenario, as shares of wall time
/// (1.0 = one core busy all the time).
pub struct CpuMeter {
    server_pid: Option<u32>,
    server_start: Option<f64>,
    own_start: Option<f64>,
    start: Instant,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            server_start: server_pid.and_then(|p| cpu_seconds(&p.to_string())),
            own_start: cpu_seconds("self"),
            start: Instant::now(),
        }
    }

    /// `(server share, generator share)`; None when /proc could not tell.
    pub fn shares(&self) -> (Option<f64>, Option<f64>) {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let server = self.server_pid.and_then(|p| cpu_seconds(&p.to_string()));
        let share = |end: Option<f64>, start: Option<f64>| Some((end? - start?) / wall);
        (share(server, self.server_start), share(cpu_seconds("self"), self.own_start))
    }
}
