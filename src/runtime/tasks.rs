//! The I/O tasks a handle started, counted, so that freeing the handle can wait for them to end:
//! once the count is zero, every socket the handle opened is closed and its port is free.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::runtime;

#[derive(Default)]
struct Count {
    running: Mutex<usize>,
    ended: Condvar,
}

/// The tasks of one handle. Cheap to clone; every clone counts the same tasks.
#[derive(Clone, Default)]
pub struct Tasks(Arc<Count>);

/// Held by a running task; dropping it (the task ended, or was dropped) counts the task out.
struct Running(Arc<Count>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        if *running == 0 {
            self.0.ended.notify_all();
        }
    }
}

impl Tasks {
    /// Spawns `task` on the shared runtime. It is counted from now on (not from when it first
    /// runs), so a [`Tasks::wait`] that starts right after this call waits for it.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let running = Running(self.0.clone());
        runtime().spawn(async move {
            // The task's own state (its sockets) is dropped when it completes, before `running`.
            task.await;
            drop(running);
        });
    }

    /// How many tasks have not ended yet.
    pub fn running(&self) -> usize {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until every task has ended, or until `deadline`. Returns whether all ended.
    pub fn wait(&self, deadline: Instant) -> bool {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            running = self.0.ended.wait_timeout(running, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wait_returns_when_the_tasks_end_or_at_the_deadline() {
        let tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = rx.await;
        });
        assert_eq!(tasks.running(), 1);
        assert!(!tasks.wait(Instant::now() + Duration::from_millis(20)), "the task still runs");
        tx.send(()).unwrap();
        assert!(tasks.wait(Instant::now() + Duration::from_secs(10)));
        assert_eq!(tasks.running(), 0);
    }
}
