//! The client's side of a connection: resolves, connects and completes the WebSocket handshake
//! within a time limit, then runs the connection like any other.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::connection::{self, ConnectionId, ConnectionSettings, NetEvent};
use super::inbox::InboxSender;
use super::frame::Masker;
use super::signal::Signal;
use super::socket_io::SocketIo;

/// Everything the I/O side needs to know to dial.
#[derive(Debug, Clone)]
pub struct DialSettings {
    /// A `ws://` URL, checked by [`check_url`].
    pub url: String,
    pub connection: ConnectionSettings,
    pub max_message_size: usize,
    /// Resolving, connecting and the handshake together must finish within this time.
    pub connect_timeout: Duration,
}

/// A dial in progress, then its connection. Dropping it does not stop it; `shutdown` does.
pub struct Dial {
    shutdown: Arc<Signal>,
}

impl Dial {
    /// Starts dialing on the shared runtime. The inbox gets `Opened` and the frames, or only
    /// `Closed` (with why) when the dial fails.
    pub fn start(id: ConnectionId, settings: DialSettings, inbox: InboxSender<NetEvent>) -> Dial {
        let shutdown = Arc::new(Signal::default());
        let tasks = inbox.tasks().clone();
        tasks.spawn(dial(id, settings, inbox, shutdown.clone()));
        Dial { shutdown }
    }

    /// Abandons the dial, or closes the connection gracefully once open.
    pub fn shutdown(&self) {
        self.shutdown.fire();
    }
}

/// Checks that `url` is a `ws://` URL a dial can use; the error says what is wrong.
pub fn check_url(url: &str) -> Result<(), String> {
    let request = url.into_client_request().map_err(|e| format!("{url:?} is not a WebSocket URL: {e}"))?;
    match request.uri().scheme_str() {
        Some("ws") => {}
        Some("wss") => return Err(format!("{url:?}: wss:// (TLS) is not supported; use ws://")),
        _ => return Err(format!("{url:?} is not a ws:// URL")),
    }
    if request.uri().host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

async fn dial(id: ConnectionId, settings: DialSettings, inbox: InboxSender<NetEvent>, shutdown: Arc<Signal>) {
    let failed = |why: String| NetEvent::Closed { id, why };
    let ws = tokio::select! {
        _ = shutdown.wait() => {
            let _ = inbox.push(failed("connect abandoned".to_string()), 0).await;
            return;
        }
        result = tokio::time::timeout(settings.connect_timeout, connect(&settings)) => match result {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                let _ = inbox.push(failed(format!("cannot connect to {}: {e}", settings.url)), 0).await;
                return;
            }
            Err(_) => {
                let ms = settings.connect_timeout.as_millis();
                let _ = inbox.push(failed(format!("cannot connect to {}: no answer within {ms} ms", settings.url)), 0).await;
                return;
            }
        },
    };
    // Masking keys differ per connection and per process.
    let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), id);
    connection::run(ws, id, settings.connection, inbox, shutdown, Some(Masker::new(seed))).await;
}

/// Resolves, connects (without Nagle's delay) and completes the handshake.
async fn connect(settings: &DialSettings) -> Result<WebSocketStream<SocketIo>, WsError> {
    let request = settings.url.as_str().into_client_request()?;
    let host = request.uri().host().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let port = request.uri().port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(settings.max_message_size))
        .max_frame_size(Some(settings.max_message_size))
        .read_buffer_size(512)
        .write_buffer_size(0);
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, SocketIo::new(stream), Some(config)).await?;
    Ok(ws)
}
