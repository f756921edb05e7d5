//! Echo mode, for WebSocket conformance testing only (`krmx serve --echo`): every text or binary
//! message goes straight back, with the same handshake, limits and close handling as a Krmx
//! connection, so a conformance suite exercises the very WebSocket layer that Krmx runs on.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::signal::Signal;

/// Echoes until the peer closes, the connection fails, or `shutdown` fires.
pub async fn run<S>(mut ws: WebSocketStream<S>, shutdown: Arc<Signal>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "going away".into() };
                let _ = ws.close(Some(frame)).await;
                return;
            }
            next = ws.next() => next,
        };
        let echoed = match next {
            Some(Ok(message @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => ws.send(message).await,
            // Pongs and close replies are queued by tungstenite; a flush writes them now.
            Some(Ok(_)) => ws.flush().await,
            Some(Err(WsError::Capacity(_))) => {
                let frame = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                let _ = ws.close(Some(frame)).await;
                return;
            }
            // The peer broke the protocol: tungstenite has queued the close frame it deserves.
            Some(Err(WsError::Protocol(_) | WsError::Utf8(_))) => {
                let _ = ws.flush().await;
                return;
            }
            Some(Err(_)) | None => return,
        };
        if echoed.is_err() {
            return;
        }
    }
}
