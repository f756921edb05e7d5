//! Shared helpers of the integration tests. Here: a minimal blocking WebSocket client over a real
//! TCP socket (tungstenite's synchronous API on `std::net::TcpStream`), with every read bounded by
//! a timeout. In the modules: child processes ([`child`]), the `krmx` binary ([`cli`]), Node.js
//! and its npm packages ([`node`]), the C API ([`ffi`]), building C programs ([`c_build`]), and a
//! polled `krmx::Server` on a free port ([`server_harness`]).
//!
//! Pings from the server are answered (tungstenite queues the pong and writes it on the next
//! read), but only while the test reads: a client that never reads never answers.

// Each test binary uses only part of these helpers.
#![allow(dead_code)]

pub mod c_build;
pub mod child;
pub mod cli;
pub mod ffi;
pub mod node;
pub mod server_harness;

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Error as WsError, Message as WsMessage, WebSocket};

/// How long any awaited frame, event or line may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The version our test clients link with (the newest `@krmx/client`).
pub const CLIENT_VERSION: &str = "0.5.4";

/// What one read of the socket produced (pings and pongs are handled inside).
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame from the server (`None`: without a code).
    Close(Option<CloseFrame>),
    /// The socket ended without a close frame, or failed.
    Gone(String),
    /// Nothing arrived in time.
    Timeout,
}

/// A blocking WebSocket test client.
pub struct Client {
    ws: WebSocket<TcpStream>,
    /// For messages: which client this is.
    pub label: String,
    closed: bool,
}

/// Opens a WebSocket to `url` (`ws://127.0.0.1:PORT/...`), returning the handshake error if any.
pub fn try_connect(url: &str) -> Result<Client, WsError> {
    let request = url.into_client_request()?;
    let host = request.uri().host().expect("the url has a host").to_string();
    let port = request.uri().port_u16().expect("the url has a port");
    let stream = TcpStream::connect((host.as_str(), port)).map_err(WsError::Io)?;
    stream.set_nodelay(true).map_err(WsError::Io)?;
    // Bounds the handshake too: a server that never answers fails the test instead of hanging it.
    stream.set_read_timeout(Some(TIMEOUT)).map_err(WsError::Io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(WsError::Io)?;
    match tungstenite::client(request, stream) {
        Ok((ws, _response)) => Ok(Client { ws, label: url.to_string(), closed: false }),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            Err(WsError::Io(std::io::Error::new(IoErrorKind::TimedOut, "handshake timed out")))
        }
    }
}

/// Opens a WebSocket to `url`, failing the test if the handshake fails.
pub fn connect(url: &str) -> Client {
    try_connect(url).unwrap_or_else(|e| panic!("cannot connect to {url}: {e:?}"))
}

/// The handshake error of `url`, failing the test if the handshake succeeds.
pub fn connect_error(url: &str) -> WsError {
    match try_connect(url) {
        Ok(_) => panic!("connecting to {url} should have failed, but the handshake succeeded"),
        Err(e) => e,
    }
}

/// The HTTP status with which the server refused the handshake of `url`.
pub fn handshake_status(url: &str) -> u16 {
    match connect_error(url) {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("connecting to {url}: expected an HTTP error response, got {other:?}"),
    }
}

/// Sends raw bytes over a plain TCP connection to `127.0.0.1:port` and returns the stream (its
/// read timeout set to [`TIMEOUT`]).
pub fn send_raw_bytes(port: u16, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("cannot open a TCP connection");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(bytes).expect("cannot write raw bytes");
    stream.flush().unwrap();
    stream
}

/// Reads a raw TCP stream until the peer closes it (returns what it sent), failing on timeout.
pub fn read_until_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut buffer = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "the server did not close the raw TCP connection within {TIMEOUT:?}");
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == IoErrorKind::ConnectionReset => return received,
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {}
            Err(e) => panic!("raw TCP read failed: {e}"),
        }
    }
}

/// A port of 127.0.0.1 where nothing listens, kept so while the returned socket lives: bound but
/// never listening (a port merely found free could be taken by a server of a test running
/// alongside, and a connect meant to fail would succeed).
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// A message frame as the server writes it: compact JSON, `type` then `payload` (if any).
pub fn frame(kind: &str, payload: Option<Value>) -> String {
    match payload {
        Some(payload) => json!({ "type": kind, "payload": payload }).to_string(),
        None => json!({ "type": kind }).to_string(),
    }
}

pub fn accepted() -> String {
    frame("krmx/accepted", None)
}
pub fn rejected(reason: &str) -> String {
    frame("krmx/rejected", Some(json!({ "reason": reason })))
}
pub fn joined(username: &str) -> String {
    frame("krmx/joined", Some(json!({ "username": username })))
}
pub fn linked(username: &str) -> String {
    frame("krmx/linked", Some(json!({ "username": username })))
}
pub fn unlinked(username: &str) -> String {
    frame("krmx/unlinked", Some(json!({ "username": username })))
}
pub fn left(username: &str) -> String {
    frame("krmx/left", Some(json!({ "username": username })))
}

/// The `krmx/link` message (`auth` only when given).
pub fn link_message(username: &str, version: &str, auth: Option<&str>) -> String {
    let mut payload = json!({ "username": username, "version": version });
    if let Some(auth) = auth {
        payload["auth"] = json!(auth);
    }
    frame("krmx/link", Some(payload))
}

impl Client {
    pub fn labelled(mut self, label: &str) -> Client {
        self.label = label.to_string();
        self
    }

    /// The underlying TCP stream (to write raw bytes past the WebSocket layer).
    pub fn tcp(&self) -> &TcpStream {
        self.ws.get_ref()
    }

    pub fn send_text(&mut self, text: &str) {
        let label = &self.label;
        self.ws.send(WsMessage::text(text)).unwrap_or_else(|e| panic!("[{label}] cannot send text {text:?}: {e}"));
    }

    pub fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        let label = &self.label;
        self.ws
            .send(WsMessage::binary(bytes.to_vec()))
            .unwrap_or_else(|e| panic!("[{label}] cannot send a binary frame: {e}"));
    }

    /// Sends `krmx/link` with [`CLIENT_VERSION`] and no auth.
    pub fn send_link(&mut self, username: &str) {
        self.send_text(&link_message(username, CLIENT_VERSION, None));
    }

    /// Sends `krmx/link` for `username` and returns the frames received until the link completes:
    /// through the `krmx/linked` naming this user, or a `krmx/rejected` (which fails the test).
    /// Frames about users that joined after this one (when relinking) are left unread.
    pub fn link(&mut self, username: &str) -> Vec<Value> {
        self.send_link(username);
        self.label = username.to_string();
        let mut frames = Vec::new();
        loop {
            let frame = self.recv_json();
            frames.push(frame.clone());
            match frame["type"].as_str() {
                Some("krmx/rejected") => panic!("[{username}] link rejected: {frame}; frames: {frames:?}"),
                Some("krmx/linked") if frame["payload"]["username"] == username => return frames,
                _ => {}
            }
        }
    }

    /// One read, waiting at most `timeout`. Pings are answered and skipped.
    pub fn recv(&mut self, timeout: Duration) -> Incoming {
        if self.closed {
            return Incoming::Gone("already closed".into());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Incoming::Timeout;
            }
            self.ws.get_ref().set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            match self.ws.read() {
                Ok(WsMessage::Text(text)) => return Incoming::Text(text.to_string()),
                Ok(WsMessage::Binary(data)) => return Incoming::Binary(data.to_vec()),
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => continue,
                Ok(WsMessage::Close(frame)) => {
                    self.closed = true;
                    // Send our close reply (best effort); the server may already be gone.
                    let _ = self.ws.flush();
                    return Incoming::Close(frame);
                }
                Err(WsError::Io(e)) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => continue,
                Err(e) => {
                    self.closed = true;
                    return Incoming::Gone(e.to_string());
                }
            }
        }
    }

    /// The next text frame, within [`TIMEOUT`], failing clearly on anything else.
    pub fn recv_text(&mut self) -> String {
        match self.recv(TIMEOUT) {
            Incoming::Text(text) => text,
            Incoming::Timeout => panic!("[{}] no frame received within {TIMEOUT:?}", self.label),
            other => panic!("[{}] expected a text frame, got {other:?}", self.label),
        }
    }

    /// The next text frame as JSON, within [`TIMEOUT`].
    pub fn recv_json(&mut self) -> Value {
        let text = self.recv_text();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("[{}] frame {text:?} is not JSON: {e}", self.label))
    }

    /// The next frames are exactly these texts, in this order.
    pub fn expect_frames<S: AsRef<str>>(&mut self, expected: &[S]) {
        for (i, want) in expected.iter().enumerate() {
            let got = self.recv_text();
            assert_eq!(got, want.as_ref(), "[{}] frame #{i} of {:?}", self.label, expected.iter().map(AsRef::as_ref).collect::<Vec<_>>());
        }
    }

    /// The next frame is exactly `expected`.
    pub fn expect_frame(&mut self, expected: &str) {
        self.expect_frames(&[expected]);
    }

    /// No data frame arrives for `duration` (pings are answered meanwhile), and the socket stays open.
    pub fn expect_silence(&mut self, duration: Duration) {
        match self.recv(duration) {
            Incoming::Timeout => {}
            other => panic!("[{}] expected nothing for {duration:?}, got {other:?}", self.label),
        }
    }

    /// Reads until the server closes the socket; fails on a data frame or a timeout. Returns the
    /// close frame (`None` when the socket ended without one).
    pub fn expect_closed(&mut self) -> Option<CloseFrame> {
        let (frames, close) = self.recv_until_closed();
        assert!(frames.is_empty(), "[{}] expected the socket to close, got frames {frames:?}", self.label);
        close
    }

    /// Every text frame until the server closes the socket, and the close frame.
    pub fn recv_until_closed(&mut self) -> (Vec<String>, Option<CloseFrame>) {
        let mut frames = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.recv(deadline.saturating_duration_since(Instant::now())) {
                Incoming::Text(text) => frames.push(text),
                Incoming::Binary(data) => frames.push(format!("<binary {} bytes>", data.len())),
                Incoming::Close(frame) => return (frames, frame),
                Incoming::Gone(_) => return (frames, None),
                Incoming::Timeout => {
                    panic!("[{}] the socket was not closed within {TIMEOUT:?}; frames meanwhile: {frames:?}", self.label)
                }
            }
        }
    }

    /// Closes the socket politely (close frame) without waiting for the answer.
    pub fn close(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }

    /// Drops the TCP connection abruptly (no close frame).
    pub fn drop_socket(self) {
        let _ = self.ws.get_ref().shutdown(Shutdown::Both);
    }
}
