//! Writing WebSocket frames (RFC 6455, 5.2): the connection's writer encodes its own frames
//! straight into one pooled buffer per wake-up, instead of keeping a write buffer per connection.
//! A client masks what it sends; a server does not.

use std::cell::RefCell;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;

/// Masking keys for the frames a client sends: xorshift64*, seeded per connection. (The keys only
/// have to be unpredictable to scripts in a browser, which never see this connection.)
#[derive(Debug, Clone)]
pub struct Masker(u64);

impl Masker {
    pub fn new(seed: u64) -> Masker {
        Masker(seed | 1)
    }

    fn next_key(&mut self) -> [u8; 4] {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((bits >> 32) as u32).to_ne_bytes()
    }
}

/// Appends one final (unfragmented) frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], masker: Option<&mut Masker>) {
    let mask_bit = if masker.is_some() { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match masker {
        None => out.extend_from_slice(payload),
        Some(masker) => {
            let key = masker.next_key();
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ key[i % 4]));
        }
    }
}

/// Appends a close frame with `code` and `reason`.
pub fn encode_close(out: &mut Vec<u8>, code: CloseCode, reason: &str, masker: Option<&mut Masker>) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&u16::from(code).to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode(out, OPCODE_CLOSE, &payload, masker);
}

/// Write buffers, reused by every connection on the same thread: an idle connection holds none.
const POOLED_BUFFERS: usize = 8;
/// A buffer that grew past this (a burst) is freed rather than kept.
const POOLED_CAPACITY: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer, from this thread's pool when it has one.
pub fn take_buffer() -> Vec<u8> {
    POOL.with(|pool| pool.borrow_mut().pop()).unwrap_or_default()
}

/// Gives a buffer back to this thread's pool (it may have been taken on another thread).
pub fn give_back(mut buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > POOLED_CAPACITY {
        return;
    }
    buffer.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_BUFFERS {
            pool.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    /// Parses what we encoded with tungstenite's own reader: header, length, unmasked payload.
    fn parse(bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes);
        let (mut header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let start = cursor.position() as usize;
        let mut payload = bytes[start..].to_vec();
        assert_eq!(payload.len() as u64, len, "the length field covers exactly the payload");
        if let Some(mask) = header.mask.take() {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
        }
        (header, payload)
    }

    #[test]
    fn every_length_form_round_trips_through_tungstenites_parser_masked_and_not() {
        let mut masker = Masker::new(7);
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for masked in [false, true] {
                let mut out = Vec::new();
                encode(&mut out, OPCODE_TEXT, &payload, masked.then_some(&mut masker));
                let (header, parsed) = parse(&out);
                assert!(header.is_final);
                assert_eq!(header.opcode, OpCode::Data(Data::Text));
                assert_eq!(parsed, payload, "len {len} masked {masked}");
            }
        }
    }

    #[test]
    fn a_close_frame_carries_its_code_and_reason() {
        let mut out = Vec::new();
        encode_close(&mut out, CloseCode::Size, "message too big", None);
        let (header, payload) = parse(&out);
        assert_eq!(header.opcode, OpCode::Control(tokio_tungstenite::tungstenite::protocol::frame::coding::Control::Close));
        assert_eq!(&payload[..2], &1009u16.to_be_bytes());
        assert_eq!(&payload[2..], b"message too big");
    }

    #[test]
    fn masking_keys_change_from_frame_to_frame() {
        let mut masker = Masker::new(42);
        let keys: std::collections::HashSet<[u8; 4]> = (0..100).map(|_| masker.next_key()).collect();
        assert_eq!(keys.len(), 100);
    }

    #[test]
    fn the_pool_keeps_small_buffers_and_drops_big_ones() {
        let mut small = take_buffer();
        small.extend_from_slice(b"abc");
        let pointer = small.as_ptr();
        give_back(small);
        let again = take_buffer();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), pointer, "the same allocation is reused");
        give_back(Vec::with_capacity(POOLED_CAPACITY + 1));
        assert_eq!(take_buffer().capacity(), 0, "a burst's buffer is not kept");
    }
}
