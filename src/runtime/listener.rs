//! The listening socket: accepts TCP connections, completes WebSocket handshakes that meet the
//! connection requirements, and runs each connection until the server shuts down.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::admission::{Admission, Ticket};
use super::connection::{self, ConnectionSettings, NetEvent};
use super::echo;
use super::inbox::InboxSender;
use super::runtime;
use super::signal::Signal;
use super::socket_io::SocketIo;
use crate::proto::requirements::{ConnectionRequirements, RequirementFailure};

/// Everything the I/O side needs to know to serve connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub host: String,
    pub port: u16,
    pub requirements: ConnectionRequirements,
    pub connection: ConnectionSettings,
    /// Largest incoming message (and frame) in bytes; over it the connection is closed with 1009.
    pub max_message_size: usize,
    /// A peer that has not completed its WebSocket handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// Most connections at once, handshakes included; more are answered 503 and closed.
    pub max_connections: usize,
    /// Most connections at once from one IP address (`None`: no cap).
    pub max_connections_per_address: Option<usize>,
    /// Echo every message back instead of speaking Krmx (conformance testing only).
    pub echo: bool,
}

/// A running listener. Dropping it does not stop it; `shutdown` does.
pub struct Listener {
    pub port: u16,
    shutdown: Arc<Signal>,
}

impl Listener {
    /// Binds now (so that a taken port is an error at once) and serves on the shared runtime.
    pub fn start(settings: ListenerSettings, inbox: InboxSender<NetEvent>) -> io::Result<Listener> {
        let addrs: Vec<SocketAddr> = (settings.host.as_str(), settings.port).to_socket_addrs()?.collect();
        let std_listener = bind_first(&addrs)?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let shutdown = Arc::new(Signal::default());
        let _guard = runtime().enter();
        let listener = TcpListener::from_std(std_listener)?;
        let tasks = inbox.tasks().clone();
        tasks.spawn(accept_loop(listener, settings, inbox, shutdown.clone()));
        Ok(Listener { port, shutdown })
    }

    /// Stops accepting and closes every connection gracefully; `NetEvent::Stopped` follows.
    pub fn shutdown(&self) {
        self.shutdown.fire();
    }
}

fn bind_first(addrs: &[SocketAddr]) -> io::Result<StdTcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the host resolved to no address");
    for addr in addrs {
        match StdTcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn accept_loop(
    listener: TcpListener,
    settings: ListenerSettings,
    inbox: InboxSender<NetEvent>,
    shutdown: Arc<Signal>,
) {
    let admission = Admission::new(settings.max_connections, settings.max_connections_per_address);
    let settings = Arc::new(settings);
    let next_id = AtomicU64::new(1);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match admission.admit(peer.ip()) {
                    Ok(ticket) => {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        connections.spawn(serve(stream, id, ticket, settings.clone(), inbox.clone(), shutdown.clone()));
                    }
                    Err(refusal) => {
                        let (admission, shutdown) = (admission.clone(), shutdown.clone());
                        connections.spawn(async move {
                            tokio::select! {
                                _ = shutdown.wait() => {}
                                _ = admission.refuse(stream, refusal) => {}
                            }
                        });
                    }
                },
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    let _ = inbox.push(NetEvent::Stopped, 0).await;
}

async fn serve(
    stream: TcpStream,
    id: u64,
    _ticket: Ticket,
    settings: Arc<ListenerSettings>,
    inbox: InboxSender<NetEvent>,
    shutdown: Arc<Signal>,
) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(settings.max_message_size))
        .max_frame_size(Some(settings.max_message_size))
        .read_buffer_size(512)
        // tungstenite only writes control frames now (into the outbox), so nothing is kept.
        .write_buffer_size(0);
    let requirements = settings.requirements.clone();
    // The error type is tungstenite's HTTP response; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        match requirements.check(target) {
            Ok(()) => Ok(response),
            Err(failure) => {
                let (status, body) = match failure {
                    RequirementFailure::WrongPath => (StatusCode::NOT_FOUND, "wrong path".to_string()),
                    RequirementFailure::QueryParameter(name) => {
                        (StatusCode::BAD_REQUEST, format!("query parameter {name} does not meet the requirement"))
                    }
                };
                let mut error = ErrorResponse::new(Some(body));
                *error.status_mut() = status;
                Err(error)
            }
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(SocketIo::new(stream), check, Some(config));
    let ws = tokio::select! {
        _ = shutdown.wait() => return,
        result = tokio::time::timeout(settings.handshake_timeout, handshake) => match result {
            Ok(Ok(ws)) => ws,
            // Not WebSocket, failed requirements, or too slow: nothing reached the protocol.
            Ok(Err(_)) | Err(_) => return,
        },
    };
    if settings.echo {
        echo::run(ws, shutdown).await;
    } else {
        connection::run(ws, id, settings.connection.clone(), inbox, shutdown, None).await;
    }
}

