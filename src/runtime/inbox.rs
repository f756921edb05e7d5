//! The bounded queue from the I/O thread to the host's thread.
//!
//! Each item costs permits (its size in bytes plus a fixed overhead). A sender waits,
//! asynchronously, until the host has taken enough items out; a connection task that waits stops
//! reading its socket, so TCP pushes back on the peer. Nothing is dropped and nothing grows
//! without bound, however long the host goes without polling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::Semaphore;

use super::tasks::Tasks;

/// Fixed cost of one item, so that a flood of empty frames is bounded too.
pub const ITEM_OVERHEAD: usize = 64;

struct Item<T> {
    value: T,
    cost: u32,
}

/// The I/O side of an inbox. Cheap to clone.
pub struct InboxSender<T> {
    tx: Sender<Item<T>>,
    permits: Arc<Semaphore>,
    wake_pending: Arc<AtomicBool>,
    tasks: Tasks,
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        InboxSender {
            tx: self.tx.clone(),
            permits: self.permits.clone(),
            wake_pending: self.wake_pending.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

/// The host side of an inbox.
pub struct InboxReceiver<T> {
    rx: Receiver<Item<T>>,
    permits: Arc<Semaphore>,
    wake_pending: Arc<AtomicBool>,
    tasks: Tasks,
}

/// The receiver is gone: the handle was freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxClosed;

/// A bounded inbox holding at most `capacity` bytes of items (plus overheads).
pub fn inbox<T>(capacity: usize) -> (InboxSender<T>, InboxReceiver<T>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let permits = Arc::new(Semaphore::new(capacity.min(Semaphore::MAX_PERMITS)));
    let wake_pending = Arc::new(AtomicBool::new(false));
    let tasks = Tasks::default();
    (
        InboxSender { tx, permits: permits.clone(), wake_pending: wake_pending.clone(), tasks: tasks.clone() },
        InboxReceiver { rx, permits, wake_pending, tasks },
    )
}

impl<T> InboxSender<T> {
    /// Queues an item of `size` bytes, waiting while the inbox is full.
    pub async fn push(&self, value: T, size: usize) -> Result<(), InboxClosed> {
        let cost = u32::try_from(size + ITEM_OVERHEAD).unwrap_or(u32::MAX);
        let permit = self.permits.acquire_many(cost).await.map_err(|_| InboxClosed)?;
        permit.forget();
        self.tx.send(Item { value, cost }).map_err(|_| {
            self.permits.add_permits(cost as usize);
            InboxClosed
        })
    }

    /// The I/O tasks that send here: whoever starts one for the host spawns it through this, so
    /// that the host, when freed, can wait for it to end.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The host is gone (freed): nothing sent here will be read.
    pub fn is_closed(&self) -> bool {
        self.permits.is_closed()
    }

    /// Queues an item that must not wait (a wake-up). Coalesced: at most one is ever queued.
    pub fn push_wake(&self, value: T) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Item { value, cost: 0 });
        }
    }
}

impl<T> InboxReceiver<T> {
    fn take(&self, item: Item<T>) -> T {
        if item.cost == 0 {
            self.wake_pending.store(false, Ordering::Release);
        } else {
            self.permits.add_permits(item.cost as usize);
        }
        item.value
    }

    pub fn try_recv(&self) -> Option<T> {
        match self.rx.try_recv() {
            Ok(item) => Some(self.take(item)),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// Stops taking items: senders waiting for room, and every later push, fail at once with
    /// [`InboxClosed`]. Items already queued are dropped.
    pub fn close(&self) {
        self.permits.close();
        while self.rx.try_recv().is_ok() {}
    }

    /// The I/O tasks started for this inbox's host.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Waits until an item arrives or `deadline` passes (`None`: forever).
    pub fn recv_deadline(&self, deadline: Option<Instant>) -> Option<T> {
        let item = match deadline {
            None => self.rx.recv().ok()?,
            Some(deadline) => match self.rx.recv_deadline(deadline) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            },
        };
        Some(self.take(item))
    }
}

impl<T> Drop for InboxReceiver<T> {
    fn drop(&mut self) {
        // Senders waiting for room give up instead of waiting forever.
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_inbox_makes_senders_wait_until_the_host_takes_items() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, rx) = inbox::<usize>(3 * (100 + ITEM_OVERHEAD));
        rt.block_on(async {
            for i in 0..3 {
                tx.push(i, 100).await.unwrap();
            }
            let blocked = tokio::time::timeout(Duration::from_millis(50), tx.push(3, 100)).await;
            assert!(blocked.is_err(), "the fourth item must wait");
        });
        assert_eq!(rx.try_recv(), Some(0));
        rt.block_on(async { tx.push(3, 100).await.unwrap() });
        let got: Vec<usize> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, [1, 2, 3]);
        drop(rx);
        assert_eq!(rt.block_on(tx.push(9, 1)), Err(InboxClosed));
    }

    #[test]
    fn wakes_are_coalesced() {
        let (tx, rx) = inbox::<u8>(1000);
        tx.push_wake(7);
        tx.push_wake(7);
        assert_eq!(rx.try_recv(), Some(7));
        assert_eq!(rx.try_recv(), None);
        tx.push_wake(8);
        assert_eq!(rx.recv_deadline(Some(Instant::now() + Duration::from_millis(10))), Some(8));
    }
}
