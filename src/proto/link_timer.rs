//! The link time limit: a connection that stays unlinked (since it opened, or since its user was
//! unlinked) for longer than the limit is closed, so idle sockets cannot pile up on a public server.
//!
//! Timers are started by events that may carry no time (a host's `unlink` or `kick`), so a started
//! timer is only armed, with a deadline, at the next moment the core is told the time. That keeps
//! the core free of clock reads and every host action free of a `now` argument.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::id_map::IdMap;
use super::server::ConnectionId;

#[derive(Debug, Default)]
pub(crate) struct LinkTimers {
    limit: Option<Duration>,
    /// Every running timer: `None` until armed, then its deadline.
    running: IdMap<Option<Instant>>,
    /// Started since the last `arm`; may hold stopped or repeated ids, which `arm` skips.
    unarmed: Vec<ConnectionId>,
    /// Armed timers by deadline, so the next one is found without a scan.
    armed: BTreeSet<(Instant, ConnectionId)>,
}

impl LinkTimers {
    /// `limit` `None`: no time limit, every call is a no-op.
    pub fn new(limit: Option<Duration>) -> Self {
        LinkTimers { limit, ..LinkTimers::default() }
    }

    /// The connection is unlinked: its time starts (at the next `arm`).
    pub fn start(&mut self, connection: ConnectionId) {
        if self.limit.is_some() && !self.running.contains_key(&connection) {
            self.running.insert(connection, None);
            self.unarmed.push(connection);
        }
    }

    /// The connection linked or closed. (A pending authentication does not stop it: a connection
    /// that has not linked when the limit is up is closed, whatever it waits for.)
    pub fn stop(&mut self, connection: ConnectionId) {
        if let Some(Some(deadline)) = self.running.remove(&connection) {
            self.armed.remove(&(deadline, connection));
        }
    }

    /// Gives every started timer its deadline, counted from `now`.
    pub fn arm(&mut self, now: Instant) {
        let Some(limit) = self.limit else { return };
        for connection in self.unarmed.drain(..) {
            if let Some(deadline @ None) = self.running.get_mut(&connection) {
                *deadline = Some(now + limit);
                self.armed.insert((now + limit, connection));
            }
        }
    }

    /// The next connection whose time is up at `now`; its timer is stopped.
    pub fn pop_expired(&mut self, now: Instant) -> Option<ConnectionId> {
        let &(deadline, connection) = self.armed.first().filter(|(deadline, _)| *deadline <= now)?;
        self.armed.remove(&(deadline, connection));
        self.running.remove(&connection);
        Some(connection)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.armed.first().map(|(deadline, _)| *deadline)
    }

    /// Timers running, armed or not (for tests and invariant checks).
    pub fn len(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_is_armed_at_the_next_time_it_hears_and_expires_after_the_limit() {
        let t0 = Instant::now();
        let mut timers = LinkTimers::new(Some(Duration::from_secs(30)));
        timers.start(1);
        assert_eq!(timers.next_deadline(), None, "not armed before the core knows the time");
        timers.arm(t0);
        timers.start(2);
        timers.arm(t0 + Duration::from_secs(5));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(29)), None);
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(40)), Some(1));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(40)), Some(2));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(40)), None);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn stopped_timers_never_expire_and_a_restart_counts_from_the_restart() {
        let t0 = Instant::now();
        let mut timers = LinkTimers::new(Some(Duration::from_secs(10)));
        timers.start(1);
        timers.stop(1);
        timers.start(1);
        timers.start(1);
        timers.arm(t0);
        timers.stop(1);
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(60)), None);
        timers.start(1);
        timers.arm(t0 + Duration::from_secs(20));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(29)), None);
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(30)), Some(1));
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn without_a_limit_nothing_runs() {
        let mut timers = LinkTimers::new(None);
        timers.start(1);
        timers.arm(Instant::now());
        assert_eq!(timers.len(), 0);
        assert_eq!(timers.next_deadline(), None);
    }
}
