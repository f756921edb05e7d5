//! Property tests of the frame parser (`Message::parse`, PROTOCOL.md "Framing" and step 1): any
//! bytes at all are either a message or an invalid message, never a panic or a stack overflow, and
//! every message survives serializing and parsing again.
//!
//! Short run: part of `cargo test`. Long run and replay: see tests/fuzz/mod.rs.

mod fuzz;

use fuzz::{config, json_value};
use krmx::proto::Message;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// The type and payload a frame should parse to, judged by serde_json's `Value` alone (the parser
/// under test works the same way, so this pins the classification rule, not the JSON grammar).
fn expected(frame: &[u8]) -> Option<Message> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(frame) else { return None };
    let Some(Value::String(kind)) = object.get("type") else { return None };
    Some(Message::new(kind.clone(), object.get("payload").cloned()))
}

fn parse_on_small_stack(frame: Vec<u8>) -> Option<Message> {
    // The host's thread parses (while polling), and a host thread may have a small stack: 1 MiB is
    // the Windows default. serde_json's depth limit bounds the need, however deep the frame nests
    // (measured: about 384 KiB in a debug build, 128 KiB in release).
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || Message::parse(&frame))
        .unwrap()
        .join()
        .expect("parsing must not overflow a 1 MiB stack")
}

/// A message whose payload nests `depth` arrays, or objects, around a 0.
fn nested_payload(objects: bool, depth: usize) -> String {
    let (open, close) = if objects { (r#"{"k":"#, "}") } else { ("[", "]") };
    format!(r#"{{"type":"a","payload":{}0{}}}"#, open.repeat(depth), close.repeat(depth))
}

#[test]
fn deep_nesting_is_an_invalid_message_not_a_stack_overflow() {
    // serde_json refuses a 128th level of arrays/objects; the frame's own object is the first level,
    // so a payload may nest 126 deep.
    for depth in [126, 127, 1_000, 100_000] {
        let arrays = nested_payload(false, depth);
        let objects = nested_payload(true, depth);
        let expect_message = depth <= 126;
        for frame in [arrays, objects] {
            let parsed = parse_on_small_stack(frame.clone().into_bytes());
            assert_eq!(parsed.is_some(), expect_message, "depth {depth}: {}", &frame[..60.min(frame.len())]);
        }
    }
    let at_limit = parse_on_small_stack(nested_payload(false, 126).into_bytes()).unwrap();
    assert_eq!(at_limit.kind, "a");
    for frame in ["[".repeat(100_000), "{\"a\":".repeat(100_000), format!("{{\"type\":\"a\",\"payload\":{}", "[".repeat(100_000))] {
        assert_eq!(parse_on_small_stack(frame.into_bytes()), None);
    }
}

#[test]
fn numbers_beyond_f64_are_invalid_messages_and_large_ones_parse() {
    let frame = |number: &str| format!(r#"{{"type":"n","payload":{number}}}"#);
    for number in ["1e999999", "-1e999999", "1e309", &"9".repeat(400), &format!("-{}", "1".repeat(400))] {
        // serde_json refuses a number out of f64 range ("number out of range"); JavaScript's
        // JSON.parse would give Infinity instead. Either way: no panic, a plain invalid message.
        assert_eq!(Message::parse(frame(number).as_bytes()), None, "{number}");
    }
    let parsed = |number: &str| Message::parse(frame(number).as_bytes()).unwrap().payload.unwrap();
    assert_eq!(parsed("1e-999999"), json!(0.0));
    assert_eq!(parsed("18446744073709551615"), json!(u64::MAX));
    assert_eq!(parsed("-9223372036854775808"), json!(i64::MIN));
    assert_eq!(parsed("18446744073709551616"), json!(18446744073709551616.0));
    assert_eq!(parsed(&format!("1{}", "0".repeat(300))), json!(1e300));
}

#[test]
fn invalid_text_is_an_invalid_message() {
    for frame in [
        &b"{\"type\":\"a\xff\"}"[..],            // invalid UTF-8 inside the type
        b"{\"type\":\"a\",\"payload\":\"\xc3\"}", // truncated UTF-8 sequence in the payload
        b"\xef\xbb\xbf{\"type\":\"a\"}",          // a byte order mark
        br#"{"type":"\ud800"}"#,                  // a lone surrogate escape
        br#"{"type":"a"} {"type":"b"}"#,          // two values in one frame
        b"{\"type\":\"a\"}\0",
    ] {
        assert_eq!(Message::parse(frame), None, "{}", String::from_utf8_lossy(frame));
    }
    // Escaped surrogate pairs, duplicate keys (the last wins) and surrounding whitespace are fine.
    assert_eq!(Message::parse(br#"{"type":"\ud83d\ude00"}"#).unwrap().kind, "\u{1F600}");
    assert_eq!(Message::parse(br#"{"type":"a","type":"b"}"#).unwrap().kind, "b");
    assert_eq!(Message::parse(b" \n\t{\"type\":\"a\"}\r\n ").unwrap().kind, "a");
}

#[test]
fn long_strings_round_trip() {
    let long = "\u{e9}x\"\\\n".repeat(200_000);
    let message = Message::new(long.clone(), Some(Value::String(long)));
    assert_eq!(Message::parse(&message.to_frame()), Some(message));
}

/// Top-level fields other than `type` and `payload`, which the parser must ignore.
fn extra_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("[a-z]{1,8}", json_value()), 0..4)
        .prop_map(|fields| fields.into_iter().filter(|(k, _)| k != "type" && k != "payload").collect())
}

/// A value that is not a message: not an object, or an object whose `type` is absent or not a string.
fn not_a_message() -> impl Strategy<Value = Value> {
    let non_string = json_value().prop_filter("not a string", |v| !v.is_string());
    prop_oneof![
        json_value().prop_filter("not an object", |v| !v.is_object()),
        (extra_fields(), proptest::option::of(json_value())).prop_map(|(fields, payload)| {
            let mut object: Map<String, Value> = fields.into_iter().collect();
            if let Some(payload) = payload {
                object.insert("payload".into(), payload);
            }
            Value::Object(object)
        }),
        (non_string, extra_fields()).prop_map(|(kind, fields)| {
            let mut object: Map<String, Value> = fields.into_iter().collect();
            object.insert("type".into(), kind);
            Value::Object(object)
        }),
    ]
}

/// Bytes that look a little like frames: fragments of JSON and of Krmx messages, glued at random.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"{".to_vec()), Just(b"}".to_vec()), Just(b"[".to_vec()), Just(b"]".to_vec()),
        Just(b"\"type\"".to_vec()), Just(b"\"payload\"".to_vec()), Just(b":".to_vec()), Just(b",".to_vec()),
        Just(b"\"krmx/link\"".to_vec()), Just(b"\"".to_vec()), Just(b"\\u".to_vec()), Just(b"1e999".to_vec()),
        Just(b"-0.5E+3".to_vec()), Just(b"null".to_vec()), Just(b"tru".to_vec()), Just(b" ".to_vec()),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(600))]

    /// Any bytes: no panic; the frame is a message exactly when it is a JSON object with a string
    /// `type`; a message's own frame parses back to it.
    #[test]
    fn any_bytes_classify_and_never_panic(frame in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), json_ish_bytes()]) {
        let parsed = Message::parse(&frame);
        prop_assert_eq!(&parsed, &expected(&frame));
        if let Some(message) = parsed {
            prop_assert!(std::str::from_utf8(&frame).is_ok(), "a message is UTF-8 text");
            prop_assert_eq!(Message::parse(&message.to_frame()), Some(message));
        }
    }

    /// A message's frame parses back to the same message, also pretty-printed and with extra fields.
    #[test]
    fn messages_round_trip(kind in any::<String>(), payload in proptest::option::of(json_value()), fields in extra_fields()) {
        let message = Message::new(kind, payload);
        let frame = message.to_frame();
        prop_assert_eq!(Message::parse(&frame), Some(message.clone()));

        let mut object: Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), Value::String(message.kind.clone()));
        if let Some(payload) = &message.payload {
            object.insert("payload".into(), payload.clone());
        }
        let pretty = serde_json::to_vec_pretty(&Value::Object(object)).unwrap();
        prop_assert_eq!(Message::parse(&pretty), Some(message));
    }

    /// Valid JSON that is not an object with a string `type` is an invalid message.
    #[test]
    fn non_messages_are_invalid(value in not_a_message()) {
        prop_assert_eq!(Message::parse(value.to_string().as_bytes()), None);
    }

    /// A damaged message frame is an invalid message: cut short, followed by garbage, or holding a
    /// byte that is never valid UTF-8.
    #[test]
    fn damaged_frames_are_invalid(kind in any::<String>(), payload in proptest::option::of(json_value()), cut in any::<prop::sample::Index>(), junk in "[^ \t\r\n]") {
        let frame = Message::new(kind, payload).to_frame().to_vec();
        let at = cut.index(frame.len());
        prop_assert_eq!(Message::parse(&frame[..at]), None, "prefix of {} bytes", at);
        let mut with_junk = frame.clone();
        with_junk.extend_from_slice(junk.as_bytes());
        prop_assert_eq!(Message::parse(&with_junk), None);
        let mut with_bad_byte = frame;
        with_bad_byte.insert(at, 0xff);
        prop_assert_eq!(Message::parse(&with_bad_byte), None);
    }

    /// Nesting on either side of serde_json's limit: a message up to it, an invalid message beyond.
    #[test]
    fn nesting_depth_decides(depth in 1usize..400, objects in any::<bool>()) {
        let frame = nested_payload(objects, depth);
        prop_assert_eq!(Message::parse(frame.as_bytes()).is_some(), depth <= 126);
    }
}
