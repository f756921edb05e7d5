//! SIGINT and SIGTERM become a graceful close instead of killing the process.

use std::sync::Arc;

/// Blocks SIGINT and SIGTERM in this thread and every thread started after it (call first, before
/// any other thread exists), and calls `on_signal` from a dedicated thread when one arrives.
pub fn on_termination(on_signal: Arc<dyn Fn() + Send + Sync>) {
    // SAFETY: plain libc signal-mask calls on a zero-initialised sigset_t owned by this frame.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::Builder::new()
        .name("krmx-signals".into())
        .spawn(move || loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialised signal set; `signal` is a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                on_signal();
            }
        })
        .expect("cannot start the signal thread");
}
