//! One WebSocket connection on the I/O thread: reads frames into the host's inbox (tungstenite
//! parses them), writes what the host queued (encoded here, all of a wake-up's frames in one
//! pooled buffer, so an idle connection holds no write buffer), pings for liveness, and closes
//! cleanly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::frame::{self, Masker};
use crate::proto::Message;
use super::inbox::{message_cost, InboxClosed, InboxSender};
use super::outbox::{Outbox, Outgoing, Queued};
use super::signal::Signal;
use super::socket_io::SocketIo;

/// Identifies a connection among those of one handle.
pub type ConnectionId = u64;

/// What the I/O side tells the host.
#[derive(Debug)]
pub enum NetEvent {
    /// A WebSocket completed its handshake; `handle` writes to it.
    Opened { id: ConnectionId, handle: ConnectionHandle },
    /// A text frame, or a binary frame (which the protocol reads as UTF-8 JSON), parsed
    /// (`None`: not a Krmx message).
    Frame { id: ConnectionId, message: Option<Message> },
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

/// The host's handle on a connection: queue frames, ask to close. Cheap to clone; usable from any
/// thread; never blocks.
#[derive(Clone)]
pub struct ConnectionHandle {
    outbox: Arc<Outbox>,
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
        self.outbox.push_frame(frame);
    }

    /// Like [`ConnectionHandle::send`], but the writer is only woken by [`ConnectionHandle::wake`],
    /// which must follow when this returns true: a batch of frames then costs one wake-up and one
    /// write per connection, not one per frame.
    pub fn queue(&self, frame: Bytes) -> bool {
        self.outbox.queue_frame(frame)
    }

    pub fn wake(&self) {
        self.outbox.wake_writer();
    }

    /// Closes after the frames already queued (close code 1000, with `reason`, which may be empty).
    pub fn close(&self, reason: &'static str) {
        self.outbox.push_close(CloseCode::Normal, reason);
    }
}

/// Runs a connection until it closes; reports `Opened`, every frame, then `Closed` to `inbox`.
/// `shutdown` closes it gracefully (queued frames first) when the owner stops. `masker`: the
/// client's masking keys (a server sends unmasked frames).
pub async fn run(
    mut ws: WebSocketStream<SocketIo>,
    id: ConnectionId,
    settings: ConnectionSettings,
    inbox: InboxSender<NetEvent>,
    shutdown: Arc<Signal>,
    mut masker: Option<Masker>,
) {
    let outbox = Arc::new(Outbox::new(settings.max_queued_bytes));
    let Some(mut socket) = ws.get_mut().divert_writes(outbox.clone()) else { return };
    let handle = ConnectionHandle { outbox: outbox.clone() };
    if inbox.push(NetEvent::Opened { id, handle }, 0).await.is_err() {
        return;
    }
    let heard_from_peer = AtomicBool::new(true);
    let peer_closed = AtomicBool::new(false);
    let reader_done = Signal::default();
    let writer_done = Signal::default();

    let reader = async {
        let why = loop {
            let next = tokio::select! {
                _ = writer_done.wait() => break "closed by the server".to_string(),
                next = ws.next() => next,
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
                    // tungstenite has prepared the close reply: this hands it to the outbox.
                    peer_closed.store(true, Ordering::Release);
                    let _ = ws.flush().await;
                    break match frame {
                        Some(f) if f.reason.is_empty() => format!("closed by the peer ({})", u16::from(f.code)),
                        Some(f) => format!("closed by the peer ({} {})", u16::from(f.code), f.reason),
                        None => "closed by the peer".to_string(),
                    };
                }
                Some(Err(WsError::Capacity(e))) => {
                    outbox.push_close(CloseCode::Size, "message too big");
                    break match e {
                        CapacityError::MessageTooLong { size, max_size } => {
                            format!("message of {size} bytes is over the limit of {max_size} bytes")
                        }
                        other => other.to_string(),
                    };
                }
                // Tell the peer what it broke (RFC 6455, 7.4.1), as far as the socket still takes it.
                Some(Err(e @ (WsError::Utf8(_) | WsError::Protocol(_)))) => {
                    match e {
                        WsError::Utf8(_) => outbox.push_close(CloseCode::Invalid, "invalid UTF-8"),
                        _ => outbox.push_close(CloseCode::Protocol, "protocol error"),
                    }
                    break format!("connection error: {e}");
                }
                Some(Err(e)) => break format!("connection error: {e}"),
            };
            // Parsed here, on an I/O thread, so the host's thread only runs the protocol.
            let (cost, message) = (message_cost(data.len()), Message::parse(&data));
            drop(data);
            if let Err(InboxClosed) = inbox.push(NetEvent::Frame { id, message }, cost).await {
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
        // What is being written: whole frames, of which `sent` bytes are on the wire, holding
        // `payload` bytes of the host's frames. Writing a piece at a time keeps every step
        // cancellable: a peer that does not read must never hold the writer up.
        let mut out = Vec::new();
        let mut sent = 0;
        let mut payload = 0;
        let mut closing = None;
        let close: (CloseCode, &str) = loop {
            if sent == out.len() {
                if out.capacity() > 0 {
                    outbox.written(std::mem::take(&mut payload));
                    frame::give_back(std::mem::take(&mut out));
                    sent = 0;
                }
                if let Some(close) = closing {
                    break close;
                }
            }
            let writing = sent < out.len();
            tokio::select! {
                biased;
                _ = outbox.kill.wait() => break (CloseCode::Policy, outbox.kill_reason()),
                _ = reader_done.wait() => break (CloseCode::Normal, ""),
                _ = shutdown.wait() => break (CloseCode::Away, "going away"),
                written = socket.write(&out[sent..]), if writing => match written {
                    Ok(0) | Err(_) => break (CloseCode::Abnormal, ""),
                    Ok(n) => sent += n,
                },
                _ = outbox.queued(), if !writing => {
                    if out.capacity() == 0 {
                        out = frame::take_buffer();
                    }
                    payload += encode_queued(&mut out, outbox.take(), masker.as_mut(), &mut closing, &outbox);
                }
                _ = async { ping.as_mut().unwrap().tick().await }, if ping.is_some() => {
                    if !heard_from_peer.swap(false, Ordering::AcqRel) {
                        break (CloseCode::Away, PING_TIMEOUT);
                    }
                    if out.capacity() == 0 {
                        out = frame::take_buffer();
                    }
                    frame::encode(&mut out, frame::OPCODE_PING, &[], masker.as_mut());
                }
            }
        };
        // Last words: the rest of what was being written and what is still queued (unless killed:
        // that peer does not read), then the close frame (unless the peer closed first: then its
        // reply is queued already). A frame cut in two can be followed by nothing.
        let killed = outbox.kill.is_fired();
        let peer_closed = peer_closed.load(Ordering::Acquire);
        let grace = if killed {
            KILL_GRACE
        } else if inbox.is_closed() {
            FREED_GRACE
        } else {
            CLOSE_GRACE
        };
        let mut code = close;
        let mut last = Vec::new();
        let at_frame_boundary = sent == out.len() || !killed;
        if !killed {
            last.extend_from_slice(&out[sent..]);
            let queued = outbox.take();
            if peer_closed {
                last.extend_from_slice(&queued.control);
            } else {
                encode_queued(&mut last, queued, masker.as_mut(), &mut closing, &outbox);
                code = closing.unwrap_or(code);
            }
        }
        if code.0 != CloseCode::Abnormal && !peer_closed && at_frame_boundary {
            frame::encode_close(&mut last, code.0, code.1, masker.as_mut());
        }
        let _ = tokio::time::timeout(grace, async {
            let _ = socket.write_all(&last).await;
            let _ = socket.shutdown().await;
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

/// Encodes what was queued into `out`: tungstenite's control frames, then the host's frames up to
/// a close (which goes into `closing`; frames queued after it are dropped). Returns the payload
/// bytes encoded, which the outbox counts until they are written.
fn encode_queued(
    out: &mut Vec<u8>,
    queued: Queued,
    mut masker: Option<&mut Masker>,
    closing: &mut Option<(CloseCode, &'static str)>,
    outbox: &Outbox,
) -> usize {
    out.extend_from_slice(&queued.control);
    let mut payload = 0;
    let mut dropped = 0;
    for item in queued.items {
        match item {
            Outgoing::Frame(data) if closing.is_some() => dropped += data.len(),
            Outgoing::Frame(data) => {
                frame::encode(out, frame::OPCODE_TEXT, &data, masker.as_deref_mut());
                payload += data.len();
            }
            Outgoing::Close(code, reason) => {
                closing.get_or_insert((code, reason));
            }
        }
    }
    outbox.written(dropped);
    payload
}
