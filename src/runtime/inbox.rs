//! The bounded queue from the I/O thread to the host's thread.
//!
//! Each item costs permits (its size in bytes plus a fixed overhead). A sender waits,
//! asynchronously, until the host has taken enough items out; a connection task that waits stops
//! reading its socket, so TCP pushes back on the peer. Nothing is dropped and nothing grows
//! without bound, however long the host goes without polling.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::Semaphore;

use super::tasks::Tasks;

/// How long a waiting host yields before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Fixed cost of one item, so that a flood of empty frames is bounded too.
pub const ITEM_OVERHEAD: usize = 64;
/// A message crosses parsed; its parsed form is charged at this many times its text (typical
/// JSON takes two to four times its text as a tree; the rare worse case stays bounded all the same).
pub const PARSED_COST_FACTOR: usize = 4;

/// The room a received message of `len` bytes takes in the queue.
pub fn message_cost(len: usize) -> usize {
    len.saturating_mul(PARSED_COST_FACTOR)
}

/// A queue of `capacity` bytes, grown if needed to hold one message of `max_message` bytes.
pub fn capacity_for(capacity: usize, max_message: usize) -> usize {
    capacity.max(message_cost(max_message) + ITEM_OVERHEAD)
}

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
    /// Room taken out but not yet given back: returned in batches (each return takes the
    /// semaphore's lock, which the I/O threads contend for), and always before the host waits.
    owed: AtomicUsize,
    return_batch: usize,
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
        InboxReceiver { rx, permits, wake_pending, tasks, owed: AtomicUsize::new(0), return_batch: (capacity / 16).clamp(1, 16 << 10) },
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
        } else if self.owed.fetch_add(item.cost as usize, Ordering::AcqRel) + item.cost as usize >= self.return_batch {
            self.give_back_room();
        }
        item.value
    }

    fn give_back_room(&self) {
        let owed = self.owed.swap(0, Ordering::AcqRel);
        if owed > 0 {
            self.permits.add_permits(owed);
        }
    }

    pub fn try_recv(&self) -> Option<T> {
        match self.rx.try_recv() {
            Ok(item) => Some(self.take(item)),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                self.give_back_room();
                None
            }
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

    /// Waits until an item arrives or `deadline` passes (`None`: forever). For the first moments
    /// it only yields its core instead of sleeping: the next message of a conversation usually
    /// comes within them, and waking a sleeping thread costs tens of microseconds on a virtual
    /// machine, more than the whole turn of the protocol.
    pub fn recv_deadline(&self, deadline: Option<Instant>) -> Option<T> {
        self.give_back_room();
        let spin_until = Instant::now() + SPIN;
        while Instant::now() < spin_until.min(deadline.unwrap_or(spin_until)) {
            if let Ok(item) = self.rx.try_recv() {
                return Some(self.take(item));
            }
            std::thread::yield_now();
        }
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
    fn room_goes_back_in_batches_and_always_before_the_host_would_wait() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let capacity = 16 * 10_000;
        let (tx, rx) = inbox::<usize>(capacity);
        rt.block_on(async {
            for i in 0..3 {
                tx.push(i, 100).await.unwrap();
            }
        });
        let full = capacity - 3 * (100 + ITEM_OVERHEAD);
        assert_eq!(rx.try_recv(), Some(0));
        assert_eq!(rx.permits.available_permits(), full, "one small item's room is not worth a return");
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.permits.available_permits(), capacity, "an empty inbox owes nothing");
        rt.block_on(async { tx.push(3, 100).await.unwrap() });
        assert_eq!(rx.recv_deadline(Some(Instant::now())), Some(3));
        assert_eq!(rx.recv_deadline(Some(Instant::now())), None);
        assert_eq!(rx.permits.available_permits(), capacity);
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
