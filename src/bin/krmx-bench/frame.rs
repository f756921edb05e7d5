//! Reading the server's frames cheaply. At a million deliveries a second a full JSON parse per
//! frame would make the generator the bottleneck, so frames are recognized by substrings:
//! a benchmark payload is a string `~SENDER~SEQ~MICROS~` (`~` never occurs in usernames nor in
//! the protocol's own messages), and protocol messages are recognized by their `krmx/` type.

use crate::clock;

/// What a frame from the server is, as far as the benchmark cares.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A benchmark message: who sent it, its sequence number and when it was sent.
    Bench { sender: &'a str, seq: u64, sent_us: u64 },
    Accepted,
    Rejected(&'a str),
    /// `krmx/linked`: the username.
    Linked(&'a str),
    /// Any other message (other protocol messages, other custom messages).
    Other,
}

/// The payload of benchmark message `seq` from `sender`, stamped now.
pub fn bench_message(sender: &str, seq: u64) -> String {
    format!(r#"{{"type":"bench/m","payload":"~{sender}~{seq}~{}~"}}"#, clock::now_us())
}

/// The link request of user `username`.
pub fn link_message(username: &str) -> String {
    format!(r#"{{"type":"krmx/link","payload":{{"username":"{username}","version":"0.5.5"}}}}"#)
}

pub fn classify(text: &str) -> Frame<'_> {
    if let Some(start) = text.find('~') {
        let mut parts = text[start + 1..].split('~');
        let (Some(sender), Some(seq), Some(sent)) = (parts.next(), parts.next(), parts.next()) else {
            return Frame::Other;
        };
        return match (seq.parse(), sent.parse()) {
            (Ok(seq), Ok(sent_us)) => Frame::Bench { sender, seq, sent_us },
            _ => Frame::Other,
        };
    }
    if text.contains("\"krmx/linked\"") {
        return string_field(text, "username").map_or(Frame::Other, Frame::Linked);
    }
    if text.contains("\"krmx/accepted\"") {
        return Frame::Accepted;
    }
    if text.contains("\"krmx/rejected\"") {
        return Frame::Rejected(string_field(text, "reason").unwrap_or(text));
    }
    Frame::Other
}

/// The value of the first string field `name` (no escapes: usernames and reasons here have none).
fn string_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_recognized_whatever_the_field_order() {
        assert_eq!(
            classify(r#"{"type":"bench/m","payload":"~s~12~3456~"}"#),
            Frame::Bench { sender: "s", seq: 12, sent_us: 3456 }
        );
        assert_eq!(classify(r#"{"payload":{"username":"u7"},"type":"krmx/linked"}"#), Frame::Linked("u7"));
        assert_eq!(classify(r#"{"type":"krmx/joined","payload":{"username":"u7"}}"#), Frame::Other);
        assert_eq!(classify(r#"{"type":"krmx/accepted"}"#), Frame::Accepted);
        assert_eq!(
            classify(r#"{"type":"krmx/rejected","payload":{"reason":"invalid username"}}"#),
            Frame::Rejected("invalid username")
        );
    }
}
