//! Gives freed heap memory back to the operating system after a burst. A connection storm
//! allocates and frees large transient buffers (a new user's table of everyone, N frames) on
//! several threads; glibc keeps what was freed inside its arenas, so an idle server would go on
//! holding about as much again as its connections use. Every few seconds, when the heap holds more
//! than a little free memory, `malloc_trim` returns it. (glibc only: other allocators return
//! memory by themselves or offer nothing to call.)

use std::time::Duration;

/// How often the heap is looked at.
const PERIOD: Duration = Duration::from_secs(2);
/// Free bytes inside the heap worth returning.
const WORTH_TRIMMING: usize = 1 << 20;

/// Started once, with the shared runtime; runs until the process exits.
pub async fn give_back_free_memory() {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        trim_if_worth_it();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_if_worth_it() {
    // SAFETY: both are plain glibc calls without arguments that point anywhere.
    unsafe {
        if libc::mallinfo2().fordblks > WORTH_TRIMMING {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_if_worth_it() {
    let _ = WORTH_TRIMMING;
}
