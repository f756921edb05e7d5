//! Clients driven through `krmx_client_*` and `krmx_send` on the test thread, as a C host drives
//! them: every polled event is rendered to a line (see [`render_client`]) and kept, so that a
//! failing expectation shows everything the client saw.

use std::ffi::c_char;
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use krmx::ffi::client::*;
use krmx::ffi::event::{KrmxEvent, KrmxEventKind::*};
use krmx::ffi::result::{KrmxResult, KrmxResult::*};

use super::events::{render_client, Ev};
use super::{c, last_error, text, users};
use crate::common::TIMEOUT;

use KrmxClientStatus::*;

/// `krmx_client_config_default`.
pub fn default_client_config() -> KrmxClientConfig {
    let mut config: KrmxClientConfig = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { krmx_client_config_default(&mut config) }, KRMX_OK);
    config
}

/// Reconnect on, with short delays.
pub fn reconnecting(config: &mut KrmxClientConfig) {
    config.reconnect = true;
    config.reconnect_min_delay_ms = 50;
    config.reconnect_max_delay_ms = 200;
}

/// One client handle, freed when dropped. Each wait for an event is bounded by [`TIMEOUT`] (a
/// hang guard, never a duration assertion).
pub struct Client {
    pub raw: *mut KrmxClient,
    /// For messages: which client this is.
    pub label: String,
    /// The line of every event polled so far.
    pub seen: Vec<String>,
}

impl Client {
    pub fn new(label: &str, configure: impl FnOnce(&mut KrmxClientConfig)) -> Client {
        let mut config = default_client_config();
        configure(&mut config);
        let mut raw = ptr::null_mut();
        assert_eq!(unsafe { krmx_client_new(&config, &mut raw) }, KRMX_OK, "{}", last_error());
        assert!(!raw.is_null());
        Client { raw, label: label.to_string(), seen: Vec::new() }
    }

    pub fn connect(&mut self, url: &str) {
        assert_eq!(unsafe { krmx_client_connect(self.raw, c(url).as_ptr()) }, KRMX_OK, "{}", last_error());
    }

    pub fn link(&mut self, username: &str, auth: Option<&str>) {
        let auth = auth.map(c);
        let auth_ptr = auth.as_ref().map_or(ptr::null(), |a| a.as_ptr());
        let result = unsafe { krmx_client_link(self.raw, c(username).as_ptr(), auth_ptr) };
        assert_eq!(result, KRMX_OK, "{}", last_error());
    }

    pub fn unlink(&mut self) {
        assert_eq!(unsafe { krmx_client_unlink(self.raw) }, KRMX_OK, "{}", last_error());
    }

    pub fn leave(&mut self) {
        assert_eq!(unsafe { krmx_client_leave(self.raw) }, KRMX_OK, "{}", last_error());
    }

    pub fn disconnect(&mut self) {
        assert_eq!(unsafe { krmx_client_disconnect(self.raw) }, KRMX_OK, "{}", last_error());
    }

    /// `krmx_send`; the result is the test's to check (refusals are tested too).
    pub fn send(&mut self, kind: &str, payload: Option<&str>) -> KrmxResult {
        let payload = payload.map(c);
        let payload_ptr = payload.as_ref().map_or(ptr::null(), |p| p.as_ptr());
        unsafe { krmx_send(self.raw, c(kind).as_ptr(), payload_ptr) }
    }

    /// One `krmx_client_poll`. Each event is printed as it comes: on failure the test harness
    /// shows the transcript of every client in order.
    pub fn poll(&mut self, timeout_ms: i32) -> Option<Ev> {
        let mut event = KrmxEvent::none();
        match unsafe { krmx_client_poll(self.raw, &mut event, timeout_ms) } {
            KRMX_OK => {
                let ev = render_client(&event);
                println!("{}| {}", self.label, ev.line);
                self.seen.push(ev.line.clone());
                Some(ev)
            }
            KRMX_NO_EVENT => {
                assert_eq!(event.kind, KRMX_EVENT_NONE);
                None
            }
            other => panic!("{}: poll failed: {other:?} {}", self.label, last_error()),
        }
    }

    /// The next event within `timeout`, polling again after a poll that ended without one.
    pub fn try_next(&mut self, timeout: Duration) -> Option<Ev> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(ev) = self.poll(left.as_millis() as i32) {
                return Some(ev);
            }
            if left.is_zero() {
                return None;
            }
        }
    }

    pub fn next(&mut self) -> Ev {
        match self.try_next(TIMEOUT) {
            Some(ev) => ev,
            None => panic!("{}: no event within {TIMEOUT:?}; everything seen: {:?}", self.label, self.seen),
        }
    }

    /// The next events must be exactly `expected`.
    pub fn expect(&mut self, expected: &[&str]) {
        let mut got = Vec::new();
        for _ in expected {
            match self.try_next(TIMEOUT) {
                Some(ev) => got.push(ev.line),
                None => break,
            }
        }
        assert_eq!(got, expected, "{}: events (everything seen: {:?})", self.label, self.seen);
    }

    /// No event for `ms` milliseconds (0: none is waiting right now, a poll that does not wait).
    pub fn expect_nothing(&mut self, ms: u64) {
        if let Some(ev) = self.try_next(Duration::from_millis(ms)) {
            panic!("{}: unexpected event {:?} (everything seen: {:?})", self.label, ev.line, self.seen);
        }
    }

    pub fn status(&self) -> KrmxClientStatus {
        let mut status = KRMX_CLIENT_STATUS_INITIALIZING;
        assert_eq!(unsafe { krmx_client_status(self.raw, &mut status) }, KRMX_OK);
        status
    }

    /// The user table through `krmx_client_user_count` and `krmx_client_user` (one past the end
    /// must be refused).
    pub fn users(&self) -> Vec<(String, bool)> {
        let mut count = usize::MAX;
        assert_eq!(unsafe { krmx_client_user_count(self.raw, &mut count) }, KRMX_OK);
        let users: Vec<(String, bool)> = (0..count)
            .map(|i| {
                let mut buffer = [0 as c_char; 33];
                let (mut len, mut linked) = (0usize, false);
                let r = unsafe { krmx_client_user(self.raw, i, buffer.as_mut_ptr(), buffer.len(), &mut len, &mut linked) };
                assert_eq!(r, KRMX_OK, "{}", last_error());
                (text(buffer.as_ptr(), len).unwrap(), linked)
            })
            .collect();
        let mut buffer = [0 as c_char; 33];
        let past_the_end =
            unsafe { krmx_client_user(self.raw, count, buffer.as_mut_ptr(), buffer.len(), ptr::null_mut(), ptr::null_mut()) };
        assert_eq!(past_the_end, KRMX_ERR_INVALID_ARGUMENT);
        users
    }

    /// The own username, or `None` (KRMX_ERR_WRONG_STATUS) when neither linking nor linked.
    pub fn username(&self) -> Option<String> {
        let mut buffer = [0 as c_char; 33];
        let mut len = 0usize;
        match unsafe { krmx_client_username(self.raw, buffer.as_mut_ptr(), buffer.len(), &mut len) } {
            KRMX_OK => Some(text(buffer.as_ptr(), len).unwrap()),
            KRMX_ERR_WRONG_STATUS => None,
            other => panic!("username: {other:?} {}", last_error()),
        }
    }

    /// Connects; the next event must be CONNECT, and the client is connected.
    pub fn connect_to(&mut self, url: &str) {
        self.connect(url);
        self.expect(&["connect"]);
        assert_eq!(self.status(), KRMX_CLIENT_STATUS_CONNECTED);
    }

    /// Connects, links `username` and expects the link to succeed; `others` are the users the
    /// server already knows, in join order, with whether they are linked.
    pub fn connect_and_link(&mut self, url: &str, username: &str, others: &[(&str, bool)]) {
        self.connect(url);
        self.expect(&["connect"]);
        self.link(username, None);
        self.expect_accept(username, others);
    }

    /// ACCEPT, then JOIN (and LINK when linked) for every user in join order, `username` last.
    pub fn expect_accept(&mut self, username: &str, others: &[(&str, bool)]) {
        let table: Vec<(&str, bool)> = others.iter().copied().chain([(username, true)]).collect();
        self.expect_accept_events(&table);
    }

    /// After ACCEPT, JOIN (and LINK when linked) for every user the server knows, in join order;
    /// `table` is that list, the client itself included where it joined. Then the client is linked
    /// with exactly that table.
    pub fn expect_linked(&mut self, table: &[(&str, bool)]) {
        self.expect_accept_events(table);
        assert_eq!(self.status(), KRMX_CLIENT_STATUS_LINKED);
        assert_eq!(self.users(), users(table), "{}: the user table", self.label);
    }

    /// ACCEPT, then JOIN (and LINK when linked) for every user of `table`, in its order.
    fn expect_accept_events(&mut self, table: &[(&str, bool)]) {
        let mut expected = vec!["accept".to_string()];
        for (name, linked) in table {
            expected.push(format!("join {name}"));
            if *linked {
                expected.push(format!("link {name}"));
            }
        }
        self.expect(&expected.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let result = unsafe { krmx_client_free(self.raw) };
        if !thread::panicking() {
            assert_eq!(result, KRMX_OK);
        }
    }
}
