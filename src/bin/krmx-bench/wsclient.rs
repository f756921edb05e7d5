//! A bare WebSocket client that links as a Krmx user: no library code on the generator side, so
//! the same generator measures our server and the reference alike.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{self, Frame};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `url` and links as `username`; returns once `krmx/accepted` arrived.
pub async fn connect_and_link(url: &str, username: &str) -> Result<Ws, String> {
    let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(60), connect)
        .await
        .map_err(|_| format!("{username}: connect timed out"))?
        .map_err(|e| format!("{username}: connect: {e}"))?;
    ws.send(Message::text(frame::link_message(username))).await.map_err(|e| format!("{username}: send: {e}"))?;
    loop {
        let text = next_text(&mut ws).await.ok_or_else(|| format!("{username}: closed while linking"))?;
        match frame::classify(&text) {
            Frame::Accepted => return Ok(ws),
            Frame::Rejected(reason) => return Err(format!("{username}: rejected: {reason}")),
            _ => {}
        }
    }
}

/// The next text frame (pings are answered by tungstenite itself), or None once closed.
pub async fn next_text(ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin)) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(text),
            Ok(Message::Binary(bytes)) => {
                if let Ok(text) = String::from_utf8(bytes.to_vec()) {
                    return Some(text.into());
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
