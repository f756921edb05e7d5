//! Where the tools' commands come from: JSON lines on stdin, and SIGINT or SIGTERM, which become a
//! graceful stop instead of killing the process. Each command wakes the tool's poll.

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use krmx::Waker;

/// A line of stdin, or a termination signal.
pub enum Command {
    Line(String),
    Terminate,
}

pub struct Commands {
    tx: Sender<Command>,
    rx: Receiver<Command>,
    waker: Waker,
}

impl Commands {
    /// Turns SIGINT and SIGTERM into `Terminate` (a second signal exits at once, with 130). Call
    /// it first, before any other thread exists: the signals are blocked in this thread and every
    /// thread started after it, and taken by a dedicated thread.
    pub fn new(waker: Waker) -> Commands {
        let (tx, rx) = crossbeam_channel::unbounded();
        let signals = AtomicUsize::new(0);
        let (signal_tx, signal_waker) = (tx.clone(), waker.clone());
        on_termination(Arc::new(move || {
            if signals.fetch_add(1, Ordering::SeqCst) > 0 {
                std::process::exit(130);
            }
            let _ = signal_tx.send(Command::Terminate);
            signal_waker.wake();
        }));
        Commands { tx, rx, waker }
    }

    /// Starts reading stdin on its own thread. The end of stdin does not stop the tool.
    pub fn read_stdin(&self) {
        let (commands, waker) = (self.tx.clone(), self.waker.clone());
        std::thread::Builder::new()
            .name("krmx-stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    if commands.send(Command::Line(line)).is_err() {
                        break;
                    }
                    waker.wake();
                }
            })
            .expect("cannot start the stdin thread");
    }

    /// The next command that arrived, without waiting.
    pub fn try_next(&self) -> Option<Command> {
        self.rx.try_recv().ok()
    }
}

fn on_termination(on_signal: Arc<dyn Fn() + Send + Sync>) {
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
