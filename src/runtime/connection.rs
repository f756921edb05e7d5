//! One WebSocket connection on the I/O thread: reads frames into the host's inbox, writes what the
//! host queued (batched, one flush per wake-up), pings for liveness, and closes cleanly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::inbox::{InboxClosed, InboxSender};
use super::signal::Signal;

/// Identifies a connection among those of one handle.
pub type ConnectionId = u64;

/// What the I/O side tells the host.
#[derive(Debug)]
pub enum NetEvent {
    /// A WebSocket completed its handshake; `handle` writes to it.
    Opened { id: ConnectionId, handle: ConnectionHandle },
    /// A text frame, or a binary frame (which the protocol reads as UTF-8 JSON).
    Frame { id: ConnectionId, data: Bytes },
    /// The connection is gone; no more frames follow. `why` is for humans.
    Closed { id: ConnectionId, why: String },
    /// The listener stopped and every one of its connections has closed.
    Stopped,
    /// The host asked to be woken.
    Wake,
}

/// Per-connection limits and timers.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Ping every interval; a peer that has sent nothing (no pong, no frame) since the previous
    /// ping is closed.
    pub ping_interval: Option<Duration>,
    /// Most bytes queued for writing before the connection is closed as a slow reader.
    pub max_queued_bytes: usize,
}

/// How long a closing connection may take to write its last frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a connection killed for not reading may take to write its close frame.
const KILL_GRACE: Duration = Duration::from_millis(100);
/// How long a connection may take for its last frames once its handle was freed: the free waits
/// for it (see `host.rs`), so a peer that does not read must not hold the host up for long.
const FREED_GRACE: Duration = Duration::from_millis(500);
/// The close reason (and the start of the why) when a peer fell silent.
const PING_TIMEOUT: &str = "ping timeout";
/// Most frames written before one flush.
const WRITE_BATCH: usize = 256;
/// Room for frames kept between bursts.
const IDLE_BATCH: usize = 8;

enum Outgoing {
    Frame(Bytes),
    Close(CloseCode, &'static str),
}

struct Shared {
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    /// Fired to stop at once (slow reader): queued frames are abandoned.
    kill: Signal,
    kill_reason: std::sync::Mutex<Option<&'static str>>,
}

/// The host's handle on a connection: queue frames, ask to close. Cheap to clone; usable from any
/// thread; never blocks.
#[derive(Clone)]
pub struct ConnectionHandle {
    tx: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle").finish_non_exhaustive()
    }
}

impl ConnectionHandle {
    /// Queues a text frame (the bytes must be UTF-8: every frame the protocol makes is JSON text).
    /// A peer that lets more than the limit pile up is disconnected instead: it is too slow.
    pub fn send(&self, frame: Bytes) {
        let len = frame.len();
        let queued = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if queued > self.shared.max_queued_bytes {
            self.kill("slow reader: too many bytes queued for writing");
            return;
        }
        let _ = self.tx.send(Outgoing::Frame(frame));
    }

    /// Closes after the frames already queued (close code 1000, with `reason`, which may be empty).
    pub fn close(&self, reason: &'static str) {
        let _ = self.tx.send(Outgoing::Close(CloseCode::Normal, reason));
    }

    fn kill(&self, reason: &'static str) {
        self.shared.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(reason);
        self.shared.kill.fire();
    }
}

/// Runs a connection until it closes; reports `Opened`, every frame, then `Closed` to `inbox`.
/// `shutdown` closes it gracefully (queued frames first) when the owner stops.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    id: ConnectionId,
    settings: ConnectionSettings,
    inbox: InboxSender<NetEvent>,
    shutdown: Arc<Signal>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_queued_bytes: settings.max_queued_bytes,
        kill: Signal::default(),
        kill_reason: std::sync::Mutex::new(None),
    });
    let handle = ConnectionHandle { tx: tx.clone(), shared: shared.clone() };
    if inbox.push(NetEvent::Opened { id, handle }, 0).await.is_err() {
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let heard_from_peer = AtomicBool::new(true);
    let reader_done = Signal::default();
    let writer_done = Signal::default();

    let reader = async {
        let why = loop {
            let next = tokio::select! {
                _ = writer_done.wait() => break "closed by the server".to_string(),
                next = stream.next() => next,
            };
            // Anything the peer sends proves it alive, not only a pong.
            if let Some(Ok(_)) = &next {
                heard_from_peer.store(true, Ordering::Release);
            }
            let data = match next {
                None => break "connection closed".to_string(),
                Some(Ok(WsMessage::Text(text))) => Bytes::from(text),
                Some(Ok(WsMessage::Binary(data))) => data,
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
                Some(Ok(WsMessage::Close(frame))) => {
                    break match frame {
                        Some(f) if f.reason.is_empty() => format!("closed by the peer ({})", u16::from(f.code)),
                        Some(f) => format!("closed by the peer ({} {})", u16::from(f.code), f.reason),
                        None => "closed by the peer".to_string(),
                    }
                }
                Some(Err(WsError::Capacity(e))) => {
                    let _ = tx.send(Outgoing::Close(CloseCode::Size, "message too big"));
                    break match e {
                        CapacityError::MessageTooLong { size, max_size } => {
                            format!("message of {size} bytes is over the limit of {max_size} bytes")
                        }
                        other => other.to_string(),
                    };
                }
                // Tell the peer what it broke (RFC 6455, 7.4.1), as far as the socket still takes it.
                Some(Err(e @ (WsError::Utf8(_) | WsError::Protocol(_)))) => {
                    let close = match e {
                        WsError::Utf8(_) => Outgoing::Close(CloseCode::Invalid, "invalid UTF-8"),
                        _ => Outgoing::Close(CloseCode::Protocol, "protocol error"),
                    };
                    let _ = tx.send(close);
                    break format!("connection error: {e}");
                }
                Some(Err(e)) => break format!("connection error: {e}"),
            };
            let len = data.len();
            if let Err(InboxClosed) = inbox.push(NetEvent::Frame { id, data }, len).await {
                break "the host is gone".to_string();
            }
        };
        reader_done.fire();
        why
    };

    let writer = async {
        let mut ping = settings.ping_interval.map(|period| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let mut batch: Vec<Outgoing> = Vec::with_capacity(IDLE_BATCH);
        // Resolves when the writer must stop whatever it is doing. A write to a peer that does
        // not read may wait forever, so every write races with this; cancelling a write is safe
        // (what tungstenite buffered stays buffered for the last flush).
        let must_stop = || async {
            tokio::select! {
                _ = shared.kill.wait() => {}
                _ = reader_done.wait() => {}
                _ = shutdown.wait() => {}
            }
        };
        let close: (CloseCode, &str) = loop {
            tokio::select! {
                biased;
                _ = shared.kill.wait() => {
                    let reason = shared.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or("killed");
                    break (CloseCode::Policy, reason);
                }
                _ = reader_done.wait() => break (CloseCode::Normal, ""),
                _ = shutdown.wait() => break (CloseCode::Away, "going away"),
                n = rx.recv_many(&mut batch, WRITE_BATCH) => {
                    if n == 0 { break (CloseCode::Normal, ""); }
                    let written = tokio::select! {
                        biased;
                        _ = must_stop() => continue,
                        written = write_batch(&mut sink, &mut batch, &shared) => written,
                    };
                    // A burst must not leave its size behind: most connections sit idle.
                    batch.shrink_to(IDLE_BATCH);
                    match written {
                        Ok(Some(close)) => break close,
                        Ok(None) => {}
                        Err(_) => break (CloseCode::Abnormal, ""),
                    }
                }
                _ = async { ping.as_mut().unwrap().tick().await }, if ping.is_some() => {
                    if !heard_from_peer.swap(false, Ordering::AcqRel) {
                        break (CloseCode::Away, PING_TIMEOUT);
                    }
                    let sent = tokio::select! {
                        biased;
                        _ = must_stop() => continue,
                        sent = sink.send(WsMessage::Ping(Bytes::new())) => sent,
                    };
                    if sent.is_err() {
                        break (CloseCode::Abnormal, "");
                    }
                }
            }
        };
        // Last words: frames queued before the close (unless killed), then the close frame. A
        // killed connection's peer is not reading, so it gets only a moment for the close frame.
        let grace = if shared.kill.is_fired() {
            KILL_GRACE
        } else if inbox.is_closed() {
            FREED_GRACE
        } else {
            CLOSE_GRACE
        };
        let _ = tokio::time::timeout(grace, async {
            let mut code = close;
            if !shared.kill.is_fired() {
                batch.clear();
                while let Ok(item) = rx.try_recv() {
                    batch.push(item);
                }
                if let Ok(Some(c)) = write_batch(&mut sink, &mut batch, &shared).await {
                    code = c;
                }
            }
            if code.0 != CloseCode::Abnormal {
                let frame = CloseFrame { code: code.0, reason: Utf8Bytes::from_static(code.1) };
                let _ = sink.send(WsMessage::Close(Some(frame))).await;
            }
            let _ = sink.close().await;
        })
        .await;
        writer_done.fire();
        code_reason(close)
    };

    let (read_why, write_why) = tokio::join!(reader, writer);
    let why = match (write_why, settings.ping_interval) {
        (Some(why), Some(interval)) if why == PING_TIMEOUT => {
            format!("{PING_TIMEOUT}: nothing heard from the peer for a whole ping interval ({} ms)", interval.as_millis())
        }
        (write_why, _) => write_why.unwrap_or(read_why),
    };
    let _ = inbox.push(NetEvent::Closed { id, why }, 0).await;
}

/// Why the writer closed, when it was the writer's decision.
fn code_reason((code, reason): (CloseCode, &str)) -> Option<String> {
    match code {
        CloseCode::Policy | CloseCode::Size => Some(reason.to_string()),
        CloseCode::Normal | CloseCode::Away if !reason.is_empty() => Some(reason.to_string()),
        _ => None,
    }
}

/// Writes `batch` and flushes once. Stops at a queued close and returns its code.
async fn write_batch<S>(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, WsMessage>,
    batch: &mut Vec<Outgoing>,
    shared: &Shared,
) -> Result<Option<(CloseCode, &'static str)>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut written = 0;
    let mut close = None;
    for item in batch.drain(..) {
        match item {
            Outgoing::Frame(frame) => {
                written += frame.len();
                // SAFETY: every frame handed to `ConnectionHandle::send` is JSON text made by
                // serde_json, which is always valid UTF-8.
                let text = unsafe { Utf8Bytes::from_bytes_unchecked(frame) };
                if close.is_none() {
                    sink.feed(WsMessage::Text(text)).await?;
                }
            }
            Outgoing::Close(code, reason) => {
                close.get_or_insert((code, reason));
            }
        }
    }
    let result = sink.flush().await;
    shared.queued_bytes.fetch_sub(written, Ordering::AcqRel);
    result.map(|()| close)
}
