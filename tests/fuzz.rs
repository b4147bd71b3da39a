//! Deterministic property fuzzing of the pure code, with no nightly toolchain and no extra
//! dependency: seeded mutations of realistic inputs, each run under `catch_unwind` and checked
//! against properties that must hold for every input.
//!
//! Targets:
//! - `sse`: the SSE reader and parser on arbitrary bytes in arbitrary chunkings.
//! - `request`: `json_body::parse_object`, then `responses_request::normalise` or
//!   `chat_request::translate`, on mutated request bodies.
//! - `responses-relay`, `chat-relay`, `aggregate`: `ResponsesTranscript::relay`,
//!   `ChatStreamTranslator`, and `ResponsesTranscript::record` followed by
//!   `chat_response::completion`, driven the way `stream_pump::relay` and
//!   `stream_pump::aggregate` drive them, on mutated upstream event sequences (three targets
//!   over one corpus, so that a failure of one does not hide the others').
//!
//! `FUZZ_SEED` (default fixed) and `FUZZ_SECONDS` (per target, default 3) steer a run. A long
//! run by hand, in release but with overflow checks kept (an overflow is a panic only then):
//! `CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture`.
//! A failure prints the minimised input as a regression record; saved under
//! `tests/fuzz/regressions/`, it is replayed by `regressions` and seeds the next runs
//! (`FUZZ_SAVE=1` saves them itself). Each target reports every distinct failure it meets
//! (by property, or by panic location), not only the first.

#[path = "fuzz/corpus.rs"]
mod corpus;
#[path = "fuzz/engine.rs"]
mod engine;
#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "fuzz/mutate.rs"]
mod mutate;
#[path = "fuzz/records.rs"]
mod records;
#[path = "fuzz/request_target.rs"]
mod request_target;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;
#[path = "fuzz/sse_target.rs"]
mod sse_target;
#[path = "fuzz/stream_target.rs"]
mod stream_target;

use std::sync::atomic::Ordering;

use engine::{Report, Rng, Target};
use mutate::Dictionary;
use records::{Case, parse_record, regression_records, save_findings};
use request_target::{
    REQUEST_OUTCOMES, RequestCase, check_request, mutate_request, render_request, request_corpus,
    shrink_request,
};
use serde_json::Value;
use sse_target::{check_sse, mutate_sse, render_sse, shrink_sse, sse_corpus};
use stream_target::{
    StreamCase, check_aggregates, check_chat_relay, check_responses_relay, json_of_events,
    mutate_stream, render_stream, shrink_stream, stream_corpus,
};

/// Prints the run, saves its findings when asked, and fails on any.
fn finish(report: &Report) {
    report.print();
    save_findings(report);
    assert!(report.found.is_empty(), "{}", report.summary());
}

#[test]
fn fuzz_sse_reader() {
    let mut corpus = sse_corpus();
    corpus.extend(
        regression_records()
            .iter()
            .filter_map(|(_, r)| match parse_record(r) {
                Some(Case::Sse(case)) => Some(case),
                _ => None,
            }),
    );
    let report = engine::run(&Target {
        name: "sse",
        corpus,
        mutate: &mutate_sse,
        check: &check_sse,
        shrink: &shrink_sse,
        render: &render_sse,
    });
    finish(&report);
}

#[test]
fn fuzz_request_translation() {
    let mut corpus = request_corpus();
    corpus.extend(
        regression_records()
            .iter()
            .filter_map(|(_, r)| match parse_record(r) {
                Some(Case::Request(case)) => Some(case),
                _ => None,
            }),
    );
    let donors: Vec<Value> = corpus
        .iter()
        .filter_map(|case| serde_json::from_slice(&case.body).ok())
        .collect();
    let dictionary = Dictionary::harvest(&donors);
    let mutate = |rng: &mut Rng, case: &RequestCase, corpus: &[RequestCase]| {
        mutate_request(rng, case, corpus, &donors, &dictionary)
    };
    let report = engine::run(&Target {
        name: "request",
        corpus,
        mutate: &mutate,
        check: &check_request,
        shrink: &shrink_request,
        render: &render_request,
    });
    let [unparseable, refused, translated] = REQUEST_OUTCOMES
        .each_ref()
        .map(|n| n.load(Ordering::Relaxed));
    eprintln!(
        "fuzz[request]: {translated} translated, {refused} refused (4xx), {unparseable} not a JSON object"
    );
    finish(&report);
}

/// Fuzzes one of the stream checks on mutated event sequences.
fn fuzz_stream(name: &'static str, check: &dyn Fn(&StreamCase) -> Result<(), String>) {
    let mut corpus = stream_corpus();
    corpus.extend(
        regression_records()
            .iter()
            .filter_map(|(_, r)| match parse_record(r) {
                Some(Case::Stream(case)) => Some(case),
                _ => None,
            }),
    );
    let donors = json_of_events(&corpus);
    let dictionary = Dictionary::harvest(&donors);
    let mutate = |rng: &mut Rng, case: &StreamCase, corpus: &[StreamCase]| {
        mutate_stream(rng, case, corpus, &donors, &dictionary)
    };
    let report = engine::run(&Target {
        name,
        corpus,
        mutate: &mutate,
        check,
        shrink: &shrink_stream,
        render: &render_stream,
    });
    finish(&report);
}

#[test]
fn fuzz_responses_relay() {
    fuzz_stream("responses-relay", &check_responses_relay);
}

#[test]
fn fuzz_chat_relay() {
    fuzz_stream("chat-relay", &check_chat_relay);
}

#[test]
fn fuzz_stream_aggregates() {
    fuzz_stream("aggregate", &check_aggregates);
}

/// Every saved reproducer passes (each was a crash or a violated property when it was found).
#[test]
fn regressions() {
    let mut failures = Vec::new();
    let records = regression_records();
    for (name, record) in &records {
        let outcomes = match parse_record(record) {
            Some(Case::Sse(case)) => vec![engine::execute(&check_sse, &case)],
            Some(Case::Request(case)) => vec![engine::execute(&check_request, &case)],
            Some(Case::Stream(case)) => vec![
                engine::execute(&check_responses_relay, &case),
                engine::execute(&check_chat_relay, &case),
                engine::execute(&check_aggregates, &case),
            ],
            None => {
                failures.push(format!("{name}: not a regression record"));
                continue;
            }
        };
        for failure in outcomes.into_iter().filter_map(Result::err) {
            failures.push(format!("{name}: {}", failure.detail));
        }
    }
    eprintln!(
        "fuzz regressions: {} record(s), {} failing",
        records.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The harness itself: a seeded run is reproducible, and a panic is caught and located.
#[test]
fn engine_is_deterministic_and_catches_panics() {
    let draw = |seed| {
        let mut rng = Rng::new(seed);
        (0..8).map(|_| rng.next()).collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
    let check = |n: &u8| -> Result<(), String> {
        let divisor = 3 - *n;
        if 10 / divisor > 5 {
            return Err("too-big: quotient".into());
        }
        Ok(())
    };
    let panic = engine::execute(&check, &3u8).expect_err("3 divides by zero");
    assert!(
        panic.signature.starts_with("panic at tests/fuzz.rs:"),
        "{panic:?}"
    );
    let violation = engine::execute(&check, &2u8).expect_err("10/1 is too big");
    assert_eq!(violation.signature, "too-big");
    assert!(engine::execute(&check, &0u8).is_ok());
}
