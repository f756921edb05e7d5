//! Maps keyed by connection id (and sets of the host's own handles). Ids are handed out in
//! sequence by this process, never chosen by a peer, so the flooding resistance of the default
//! hasher (SipHash) buys nothing here, and these maps are looked up once per frame a broadcast
//! delivers or per C call: a multiply is all the hashing needed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::server::ConnectionId;

pub type IdMap<V> = HashMap<ConnectionId, V, BuildHasherDefault<IdHasher>>;
pub type IdBuildHasher = BuildHasherDefault<IdHasher>;

#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0.rotate_left(5) ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_land_in_distinct_places() {
        let hashes: std::collections::HashSet<u64> = (0..10_000u64)
            .map(|id| {
                let mut hasher = IdHasher::default();
                hasher.write_u64(id);
                hasher.finish() >> 50
            })
            .collect();
        assert!(hashes.len() > 9_000, "top bits spread: {}", hashes.len());
        let mut map: IdMap<u64> = IdMap::default();
        map.extend((0..1000).map(|id| (id, id * 2)));
        assert!((0..1000).all(|id| map[&id] == id * 2));
    }
}
