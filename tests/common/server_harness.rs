//! A `krmx::Server` listening on a free port of 127.0.0.1, with a thread that polls its events into
//! a channel, so a test can block on a client's socket while the server keeps working and still
//! await the host's events in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use krmx::{Server, ServerConfig, ServerEvent, ServerStatus, User};

use super::{connect, Client, TIMEOUT};

/// A listening server whose events a background thread polls into a channel.
pub struct Harness {
    pub server: Arc<Server>,
    events: Receiver<ServerEvent>,
    pub port: u16,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl Harness {
    pub fn start(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
        let mut config = ServerConfig::default();
        configure(&mut config);
        let server = Arc::new(Server::new(config));
        assert_eq!(server.status(), ServerStatus::Initializing);
        let port = server.listen(0).expect("listen on a free port");
        assert_eq!(server.port(), Some(port));
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(event) = server.poll(Some(Duration::from_millis(25))) {
                        let is_close = event == ServerEvent::Close;
                        if tx.send(event).is_err() || is_close {
                            return;
                        }
                    }
                }
            })
        };
        let harness = Harness { server, events, port, stop, poller: Some(poller) };
        harness.expect(ServerEvent::Listen { port });
        assert_eq!(harness.server.status(), ServerStatus::Listening);
        harness
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    pub fn url_with(&self, target: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, target)
    }

    pub fn connect(&self, label: &str) -> Client {
        connect(&self.url()).labelled(label)
    }

    /// A new connection linked as `username`, with the host's events of that link consumed.
    pub fn linked(&self, username: &str) -> Client {
        let mut client = self.connect(username);
        let is_new = !self.server.users().iter().any(|u| u.username == username);
        client.link(username);
        if is_new {
            self.expect(ServerEvent::Join { username: username.into() });
        }
        self.expect(ServerEvent::Link { username: username.into() });
        client
    }

    /// The host's events of a new user linking: join, then link.
    pub fn expect_join_and_link(&self, username: &str) {
        self.expect(ServerEvent::Join { username: username.into() });
        self.expect(ServerEvent::Link { username: username.into() });
    }

    pub fn next_event(&self) -> ServerEvent {
        match self.events.recv_timeout(TIMEOUT) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => panic!("no server event within {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the poller stopped (after a Close event)"),
        }
    }

    pub fn expect(&self, expected: ServerEvent) {
        assert_eq!(self.next_event(), expected);
    }

    pub fn expect_no_event(&self, duration: Duration) {
        match self.events.recv_timeout(duration) {
            Err(_) => {}
            Ok(event) => panic!("expected no server event for {duration:?}, got {event:?}"),
        }
    }

    pub fn users(&self) -> Vec<(String, bool)> {
        self.server.users().into_iter().map(|User { username, is_linked }| (username, is_linked)).collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.waker().wake();
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

