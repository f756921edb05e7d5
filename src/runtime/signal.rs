//! A one-shot, many-waiter signal (shutdown, kill) that can be fired from any thread.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Signal {
    fired: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Resolves once the signal has fired (at once if it already has).
    pub async fn wait(&self) {
        // A `Notified` receives `notify_waiters` from its creation on, so checking the flag after
        // creating it cannot miss a fire.
        let notified = self.notify.notified();
        if self.is_fired() {
            return;
        }
        notified.await;
    }
}
