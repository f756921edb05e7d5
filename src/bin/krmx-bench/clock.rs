//! One monotonic clock for the whole process, so that a timestamp a sender puts in a payload can
//! be compared with the time a receiver in the same process sees it.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the first call in this process.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}
