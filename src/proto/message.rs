//! Krmx messages: parsing a frame into a message, and serializing the protocol's own messages.

use bytes::Bytes;
use serde_json::{Map, Value};

/// The prefix reserved for the protocol's own message types.
pub const RESERVED_PREFIX: &str = "krmx/";

/// A Krmx message: a `type` and an optional JSON `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: String,
    pub payload: Option<Value>,
}

/// Why a message could not be built or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The type starts with `krmx/`, which only the protocol itself may use.
    ReservedType,
    /// The payload text is not valid JSON.
    InvalidPayload(String),
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageError::ReservedType => write!(
                f,
                "message type must not start with the reserved '{RESERVED_PREFIX}' prefix"
            ),
            MessageError::InvalidPayload(e) => write!(f, "payload is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for MessageError {}

impl Message {
    pub fn new(kind: impl Into<String>, payload: Option<Value>) -> Self {
        Message { kind: kind.into(), payload }
    }

    /// A custom (application) message: refuses the reserved `krmx/` prefix.
    pub fn custom(kind: impl Into<String>, payload: Option<Value>) -> Result<Self, MessageError> {
        let message = Message::new(kind, payload);
        if message.is_reserved() {
            return Err(MessageError::ReservedType);
        }
        Ok(message)
    }

    /// A custom message whose payload is given as JSON text (as C hosts give it).
    pub fn custom_from_json(kind: &str, payload_json: Option<&str>) -> Result<Self, MessageError> {
        let payload = match payload_json {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<Value>(text)
                    .map_err(|e| MessageError::InvalidPayload(e.to_string()))?,
            ),
        };
        Message::custom(kind, payload)
    }

    pub fn is_reserved(&self) -> bool {
        self.kind.starts_with(RESERVED_PREFIX)
    }

    /// Parses one frame. `None` for anything that is not a JSON object with a string `type`
    /// (PROTOCOL.md step 1). Extra top-level fields are ignored.
    pub fn parse(frame: &[u8]) -> Option<Message> {
        serde_json::from_slice::<Envelope>(frame).ok()?.0
    }

    /// A message from an already parsed JSON value; `None` unless it is an object with a string `type`.
    pub fn from_value(value: Value) -> Option<Message> {
        let Value::Object(mut object) = value else { return None };
        let Some(Value::String(kind)) = object.remove("type") else { return None };
        let payload = object.remove("payload");
        Some(Message { kind, payload })
    }

    /// The message as a JSON value: `{"type":..., "payload":...}` (no payload key when absent).
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), Value::String(self.kind.clone()));
        if let Some(payload) = &self.payload {
            object.insert("payload".into(), payload.clone());
        }
        Value::Object(object)
    }

    /// The payload as JSON text, if any.
    pub fn payload_json(&self) -> Option<String> {
        self.payload.as_ref().map(|p| p.to_string())
    }

    /// The wire form: compact JSON text. Serialized once, then shared by every recipient.
    pub fn to_frame(&self) -> Bytes {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            payload: Option<&'a Value>,
        }
        let wire = Wire { kind: &self.kind, payload: self.payload.as_ref() };
        // Serializing a str and a Value cannot fail.
        Bytes::from(serde_json::to_vec(&wire).expect("a message always serializes"))
    }
}

/// A frame read in one pass: an object whose `type` and `payload` are kept and whose other fields
/// are skipped, without building a map for the envelope. As with `JSON.parse`, a repeated key's
/// last value counts. `None` inside: an object whose (last) `type` is not a string.
struct Envelope(Option<Message>);

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Envelope;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let (mut kind, mut payload) = (None, None);
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "type" => kind = Some(map.next_value::<Value>()?),
                        "payload" => payload = Some(map.next_value::<Value>()?),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Envelope(match kind {
                    Some(Value::String(kind)) => Some(Message { kind, payload }),
                    _ => None,
                }))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The protocol's own messages (server → client and client → server).
pub mod krmx {
    use super::Message;
    use serde_json::json;

    pub const LINK: &str = "krmx/link";
    pub const UNLINK: &str = "krmx/unlink";
    pub const LEAVE: &str = "krmx/leave";
    pub const ACCEPTED: &str = "krmx/accepted";
    pub const REJECTED: &str = "krmx/rejected";
    pub const JOINED: &str = "krmx/joined";
    pub const LINKED: &str = "krmx/linked";
    pub const UNLINKED: &str = "krmx/unlinked";
    pub const LEFT: &str = "krmx/left";

    pub fn accepted() -> Message {
        Message::new(ACCEPTED, None)
    }
    pub fn rejected(reason: &str) -> Message {
        Message::new(REJECTED, Some(json!({ "reason": reason })))
    }
    fn about(kind: &str, username: &str) -> Message {
        Message::new(kind, Some(json!({ "username": username })))
    }
    pub fn joined(username: &str) -> Message {
        about(JOINED, username)
    }
    pub fn linked(username: &str) -> Message {
        about(LINKED, username)
    }
    pub fn unlinked(username: &str) -> Message {
        about(UNLINKED, username)
    }
    pub fn left(username: &str) -> Message {
        about(LEFT, username)
    }
    pub fn link(username: &str, version: &str, auth: Option<&str>) -> Message {
        let mut payload = json!({ "username": username, "version": version });
        if let Some(auth) = auth {
            payload["auth"] = auth.into();
        }
        Message::new(LINK, Some(payload))
    }
    pub fn unlink() -> Message {
        Message::new(UNLINK, None)
    }
    pub fn leave() -> Message {
        Message::new(LEAVE, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_frames_are_not_messages() {
        for frame in [
            "", "true", "\"hello\"", "42", "null", "not-json", "{}", "{\"type\":3}",
            "{\"type\":{\"k\":\"v\"}}", "[{\"type\":\"a\"}]", "{\"type\":null}", "{\"type\":\"a\"",
        ] {
            assert_eq!(Message::parse(frame.as_bytes()), None, "frame {frame:?}");
        }
        assert_eq!(Message::parse(&[0xff, 0xfe, 0x7b]), None, "invalid UTF-8");
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(Message::parse(format!("{{\"type\":\"a\",\"payload\":{deep}}}").as_bytes()), None);
    }

    #[test]
    fn valid_frames_parse_with_and_without_payload() {
        assert_eq!(Message::parse(b"{\"type\":\"a/b\"}"), Some(Message::new("a/b", None)));
        assert_eq!(
            Message::parse(b"{\"type\":\"a\",\"payload\":{\"x\":[1,2]},\"extra\":true}"),
            Some(Message::new("a", Some(json!({"x":[1,2]}))))
        );
        assert_eq!(
            Message::parse(b"{\"type\":\"a\",\"payload\":null}"),
            Some(Message::new("a", Some(Value::Null)))
        );
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value_as_in_json_parse() {
        assert_eq!(
            Message::parse(br#"{"type":3,"payload":1,"type":"a","payload":2}"#),
            Some(Message::new("a", Some(json!(2))))
        );
        assert_eq!(Message::parse(br#"{"type":"a","type":3}"#), None);
    }

    #[test]
    fn deep_nesting_in_an_ignored_field_is_skipped_without_recursion() {
        // An extra field is ignored whatever it holds (serde_json skips it with a loop, not a
        // recursion); a payload that deep is refused (tests above), since it would be built.
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let parsed = Message::parse(format!(r#"{{"type":"a","extra":{deep}}}"#).as_bytes());
        assert_eq!(parsed, Some(Message::new("a", None)));
    }

    #[test]
    fn floats_survive_a_frame_exactly() {
        // Found by tests/proto_fuzz_parser.rs: serde_json's default float parsing may be one unit
        // in the last place off, so a payload relayed through a server changed its numbers.
        for x in [-6.764004856137652e202, -3.8560020949490803e31, 0.1, f64::MAX, f64::MIN_POSITIVE, 5e-324] {
            let message = Message::new("a", Some(json!([x])));
            assert_eq!(Message::parse(&message.to_frame()), Some(message), "{x:e}");
        }
    }

    #[test]
    fn frames_are_compact_json_without_absent_payload() {
        assert_eq!(&krmx::accepted().to_frame()[..], b"{\"type\":\"krmx/accepted\"}");
        assert_eq!(&krmx::joined("simon").to_frame()[..], b"{\"type\":\"krmx/joined\",\"payload\":{\"username\":\"simon\"}}");
        assert_eq!(&krmx::rejected("x").to_frame()[..], b"{\"type\":\"krmx/rejected\",\"payload\":{\"reason\":\"x\"}}");
    }

    #[test]
    fn custom_messages_refuse_reserved_types_and_bad_payloads() {
        assert_eq!(Message::custom("krmx/x", None), Err(MessageError::ReservedType));
        assert!(matches!(Message::custom_from_json("a", Some("{")), Err(MessageError::InvalidPayload(_))));
        assert_eq!(Message::custom_from_json("a", Some(" [1] ")).unwrap().payload, Some(json!([1])));
        assert_eq!(Message::custom_from_json("a", None).unwrap().payload, None);
    }
}
