//! What waits to be written to one connection: the host's frames and closes, in order, and the
//! control frames tungstenite answers with (pongs, a close reply). Bounded in bytes (past the
//! limit the connection is killed as a slow reader), emptied by the writer with one swap per
//! wake-up, and holding no memory while the connection is idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::signal::Signal;

/// One item the host queued.
#[derive(Debug)]
pub enum Outgoing {
    /// A text frame's payload (JSON, so always UTF-8).
    Frame(Bytes),
    /// Close after what was queued before (what is queued after is not sent).
    Close(CloseCode, &'static str),
}

/// What the writer takes in one swap.
#[derive(Debug, Default)]
pub struct Queued {
    pub items: Vec<Outgoing>,
    /// Encoded control frames from tungstenite, written before the items.
    pub control: Vec<u8>,
}

impl Queued {
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.control.is_empty()
    }
}

#[derive(Debug)]
pub struct Outbox {
    queued: Mutex<Queued>,
    wake: Notify,
    /// Payload bytes queued or being written.
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    /// Fired to stop at once (a slow reader): what is queued is abandoned.
    pub kill: Signal,
    kill_reason: Mutex<Option<&'static str>>,
}

impl Outbox {
    pub fn new(max_queued_bytes: usize) -> Outbox {
        Outbox {
            queued: Mutex::default(),
            wake: Notify::new(),
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes,
            kill: Signal::default(),
            kill_reason: Mutex::new(None),
        }
    }

    /// Queues, and tells whether the writer must be woken for it: a queue that was not empty has
    /// a wake-up pending already, or the writer is at work on it.
    fn queue(&self, push: impl FnOnce(&mut Queued)) -> bool {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = queued.is_empty();
        push(&mut queued);
        was_empty
    }

    fn push(&self, push: impl FnOnce(&mut Queued)) {
        if self.queue(push) {
            self.wake_writer();
        }
    }

    pub fn wake_writer(&self) {
        self.wake.notify_one();
    }

    /// Queues a text frame without waking the writer; true when [`Outbox::wake_writer`] must be
    /// called for it (a sender of many frames wakes each writer once, after the last). A peer
    /// that lets more than the limit pile up is killed instead.
    pub fn queue_frame(&self, frame: Bytes) -> bool {
        let len = frame.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if queued > self.max_queued_bytes {
            self.kill("slow reader: too many bytes queued for writing");
            return false;
        }
        self.queue(|q| q.items.push(Outgoing::Frame(frame)))
    }

    /// Queues a text frame and wakes the writer if needed.
    pub fn push_frame(&self, frame: Bytes) {
        if self.queue_frame(frame) {
            self.wake_writer();
        }
    }

    pub fn push_close(&self, code: CloseCode, reason: &'static str) {
        self.push(|q| q.items.push(Outgoing::Close(code, reason)));
    }

    /// Bytes tungstenite writes (encoded control frames).
    pub fn push_control(&self, bytes: &[u8]) {
        self.push(|q| q.control.extend_from_slice(bytes));
    }

    /// Everything queued, leaving nothing allocated behind.
    pub fn take(&self) -> Queued {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Resolves when something was queued since the last `take` (at once if it already was).
    pub async fn queued(&self) {
        self.wake.notified().await;
    }

    /// `bytes` of frame payload have been written (or abandoned).
    pub fn written(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn kill(&self, reason: &'static str) {
        self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(reason);
        self.kill.fire();
    }

    pub fn kill_reason(&self) -> &'static str {
        self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or("killed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_empties_everything_and_the_next_push_wakes_the_writer() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let outbox = Outbox::new(1000);
        outbox.push_frame(Bytes::from_static(b"one"));
        outbox.push_control(b"\x8a\x00");
        outbox.push_frame(Bytes::from_static(b"two"));
        rt.block_on(outbox.queued());
        let taken = outbox.take();
        assert_eq!(taken.items.len(), 2);
        assert_eq!(taken.control, b"\x8a\x00");
        assert_eq!(outbox.take().items.capacity(), 0, "nothing stays allocated");
        let nothing = rt.block_on(async { tokio::time::timeout(std::time::Duration::from_millis(20), outbox.queued()).await });
        assert!(nothing.is_err(), "no wake-up without a push");
        outbox.push_close(CloseCode::Normal, "");
        rt.block_on(outbox.queued());
    }

    #[test]
    fn a_slow_reader_is_killed_once_over_the_limit() {
        let outbox = Outbox::new(10);
        outbox.push_frame(Bytes::from_static(b"12345"));
        outbox.push_frame(Bytes::from_static(b"12345"));
        assert!(!outbox.kill.is_fired());
        outbox.push_frame(Bytes::from_static(b"1"));
        assert!(outbox.kill.is_fired());
        assert_eq!(outbox.kill_reason(), "slow reader: too many bytes queued for writing");
        assert_eq!(outbox.take().items.len(), 2, "the frame over the limit is not queued");
    }
}
