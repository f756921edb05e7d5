//! Shared by the proto_fuzz_* property tests (parser, server, session, client): the run's size
//! and a JSON value generator.
//!
//! The short run is part of `cargo test` (a few hundred cases per property, seconds in a debug
//! build). The long run, all four files:
//!
//!     PROPTEST_CASES=100000 cargo test --release --test proto_fuzz_parser --test proto_fuzz_server \
//!         --test proto_fuzz_session --test proto_fuzz_client
//!
//! Each run draws a new random seed; a failure prints its shrunk minimal input, which belongs in a
//! deterministic regression test. For a repeatable run, set `PROPTEST_RNG_SEED` to a number.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Number, Value};

/// `default_cases` cases (sized so that the whole short run stays within seconds in a debug
/// build), or `PROPTEST_CASES` for a long run. No failure files are written (no
/// proptest-regressions/ directory).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default_cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Any JSON value, up to 6 levels deep: every number kind, any string.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
