//! Which TCP connections a listener takes on: at most so many at once, and at most so many from one
//! address. Counted from accept to close, handshake included, so that sockets that never finish
//! their handshake (a slowloris) use up the same budget as real players.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The budget of one listener. Cheap to share.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: Option<usize>,
    counts: Mutex<Counts>,
    /// Refused sockets being told why: few at a time, so refusing costs little under a flood.
    refusals: Semaphore,
}

/// Why a connection was not taken on; the text goes into the HTTP 503 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Full,
    AddressFull,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "server is full: too many connections",
            Refusal::AddressFull => "too many connections from this address",
        }
    }
}

/// A connection taken on; dropping it gives its place back.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    address: IpAddr,
}

/// Most refused sockets answered at once; past it, a refused socket is closed without an answer.
const MAX_REFUSALS_ANSWERING: usize = 64;
/// How long a refused peer has to send its request before it is answered anyway.
const REFUSAL_WAIT: Duration = Duration::from_secs(1);

impl Admission {
    pub fn new(max_total: usize, max_per_address: Option<usize>) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_address,
            counts: Mutex::default(),
            refusals: Semaphore::new(MAX_REFUSALS_ANSWERING),
        })
    }

    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Ticket, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let from_address = counts.by_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address.is_some_and(|max| from_address >= max) {
            return Err(Refusal::AddressFull);
        }
        counts.total += 1;
        counts.by_address.insert(address, from_address + 1);
        Ok(Ticket { admission: self.clone(), address })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Answers a refused socket with `503 Service Unavailable` and the reason, after reading what
    /// it sent (closing with unread input would reset the connection and lose the answer).
    pub async fn refuse(&self, mut stream: TcpStream, refusal: Refusal) {
        let Ok(_permit) = self.refusals.try_acquire() else { return };
        let mut request = [0u8; 4096];
        let _ = tokio::time::timeout(REFUSAL_WAIT, stream.read(&mut request)).await;
        let body = refusal.reason();
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WAIT, async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_and_per_address_caps_hold_and_places_come_back_on_drop() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let admission = Admission::new(3, Some(2));
        let t1 = admission.admit(a).unwrap();
        let _t2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refusal::AddressFull);
        let _t3 = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), Refusal::Full);
        assert_eq!(admission.open(), 3);
        drop(t1);
        assert_eq!(admission.open(), 2);
        let _t4 = admission.admit(a).unwrap();
    }

    #[test]
    fn without_a_per_address_cap_one_address_may_use_everything() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let admission = Admission::new(5, None);
        let tickets: Vec<Ticket> = (0..5).map(|_| admission.admit(a).unwrap()).collect();
        assert_eq!(admission.admit(a).unwrap_err(), Refusal::Full);
        drop(tickets);
        assert_eq!(admission.open(), 0);
        assert!(admission.counts.lock().unwrap().by_address.is_empty(), "no entry per address is left behind");
    }
}
