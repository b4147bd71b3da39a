//! Fuzz target `request`: `json_body::parse_object`, then `responses_request::normalise` or
//! `chat_request::translate`, on mutated request bodies. An accepted body must meet the
//! backend's invariants (and, for chat, whose call pairing is repaired, the fake backend's
//! checks in full); a refused one must be the caller's fault, OpenAI-shaped. For
//! `/v1/responses`, `normalise_text` (which keeps `input` as text, as the handler reads a body)
//! must give the same answer as the tree: the same upstream JSON, or the same error. Every body
//! that is JSON is also read back through `CheckedJson`, which must see what a `Value` sees.

use std::sync::atomic::{AtomicU64, Ordering};

use codex_sub_proxy::chat_request::{ChatOptions, translate};
use codex_sub_proxy::checked_json::CheckedJson;
use codex_sub_proxy::config::ChatSystemAs;
use codex_sub_proxy::error::ProxyError;
use codex_sub_proxy::json_body::parse_object;
use codex_sub_proxy::param_policy::{Disposition, Endpoint, disposition};
use codex_sub_proxy::responses_request::{
    NormaliseOptions, UpstreamRequest, normalise, normalise_text,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::engine::Rng;
use super::mutate::{Dictionary, mutate_bytes, mutate_json, shrink_bytes, shrink_json};
use super::records::put_bytes;
use super::{corpus, fake_codex};

const DEFAULT_INSTRUCTIONS: &str = "You are a helpful assistant.";

/// A request body for one endpoint.
#[derive(Debug, Clone)]
pub struct RequestCase {
    pub chat: bool,
    pub developer: bool,
    pub body: Vec<u8>,
}

/// How the request target's inputs fared: not a JSON object, refused, translated.
pub static REQUEST_OUTCOMES: [AtomicU64; 3] =
    [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn count_request(outcome: usize) {
    REQUEST_OUTCOMES[outcome].fetch_add(1, Ordering::Relaxed);
}

pub fn check_request(case: &RequestCase) -> Result<(), String> {
    check_checked_reading(&case.body)?;
    if !case.chat {
        check_text_reading(&case.body)?;
    }
    let body = match parse_object(&case.body) {
        Ok(body) => body,
        Err(error) => {
            count_request(0);
            return check_client_error("parse", &error);
        }
    };
    if case.chat {
        let options = ChatOptions {
            default_instructions: DEFAULT_INSTRUCTIONS,
            system_as: if case.developer {
                ChatSystemAs::Developer
            } else {
                ChatSystemAs::Instructions
            },
        };
        match translate(body, &options) {
            Ok(request) => {
                count_request(2);
                check_upstream(&request.upstream, "chat")?;
                // The chat translation repairs call/output pairing, so the backend's own checks
                // (the fake mirrors them) must pass in full.
                fake_codex::validate_responses_body(&request.upstream.body)
                    .map_err(|detail| format!("chat-backend-refuses: {detail}"))
            }
            Err(error) => {
                count_request(1);
                check_client_error("chat", &error)
            }
        }
    } else {
        let options = NormaliseOptions {
            default_instructions: DEFAULT_INSTRUCTIONS,
        };
        match normalise(body, &options) {
            Ok(request) => {
                count_request(2);
                check_upstream(&request, "responses")
            }
            Err(error) => {
                count_request(1);
                check_client_error("responses", &error)
            }
        }
    }
}

/// A body that is JSON, read through `CheckedJson` at every level, is the `Value` serde reads.
fn check_checked_reading(bytes: &[u8]) -> Result<(), String> {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    let text = std::str::from_utf8(bytes).map_err(|e| format!("checked-json: {e}"))?;
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| format!("checked-json: no RawValue: {e}"))?;
    match rebuilt(CheckedJson::of(raw)) {
        Some(seen) if seen == value => Ok(()),
        seen => Err(format!(
            "checked-json-differs: Value {value} against {seen:?}"
        )),
    }
}

/// The `Value` that `CheckedJson`'s readers see in `json`.
fn rebuilt(json: CheckedJson<'_>) -> Option<Value> {
    if let Some(members) = json.members() {
        let mut object = Map::new();
        for member in members {
            let (name, value) = member?;
            object.insert(name.into_owned(), rebuilt(value)?);
        }
        return Some(Value::Object(object));
    }
    if let Some(elements) = json.elements() {
        return elements
            .map(rebuilt)
            .collect::<Option<_>>()
            .map(Value::Array);
    }
    if let Some(text) = json.as_str() {
        return Some(Value::String(text.into_owned()));
    }
    serde_json::from_str(json.get()).ok()
}

/// `normalise_text` answers as `parse_object` then `normalise` do.
fn check_text_reading(bytes: &[u8]) -> Result<(), String> {
    let options = NormaliseOptions {
        default_instructions: DEFAULT_INSTRUCTIONS,
    };
    let tree = parse_object(bytes).and_then(|body| normalise(body, &options));
    let text = normalise_text(bytes, &options);
    match (tree, text) {
        (Ok(tree), Ok(text)) => {
            let json = |request: &UpstreamRequest| {
                serde_json::from_slice::<Value>(&request.body_bytes()).map_err(|e| e.to_string())
            };
            let (tree_json, text_json) = (json(&tree)?, json(&text)?);
            let same = tree_json == text_json
                && (tree.stream, &tree.model, &tree.dropped)
                    == (text.stream, &text.model, &text.dropped);
            if same {
                Ok(())
            } else {
                Err(format!(
                    "text-reading-differs: tree {tree_json} against text {text_json}"
                ))
            }
        }
        (Err(tree), Err(text)) if tree.body() == text.body() => Ok(()),
        // The one difference on purpose (`raw_input`): a number past `f64`'s range in an input
        // item or in `tools` is passed on as written (or refused in other words when its item
        // is changed), where a tree refuses the body.
        (Err(_), _)
            if serde_json::from_slice::<Value>(bytes)
                .is_err_and(|error| error.to_string().contains("number out of range")) =>
        {
            Ok(())
        }
        (tree, text) => Err(format!(
            "text-reading-differs: tree {:?} against text {:?}",
            tree.map(|r| r.body),
            text.map(|r| r.body)
        )),
    }
}

/// The invariants of every upstream body (contract §4.2–§4.6).
fn check_upstream(request: &UpstreamRequest, endpoint: &str) -> Result<(), String> {
    let fail = |what: String| Err(format!("{endpoint}-upstream-body: {what}"));
    let Some(body) = request.body.as_object() else {
        return fail("not an object".into());
    };
    if body.get("store") != Some(&json!(false)) {
        return fail(format!("store is {:?}", body.get("store")));
    }
    if body.get("stream") != Some(&json!(true)) {
        return fail(format!("stream is {:?}", body.get("stream")));
    }
    if !body.get("instructions").is_some_and(Value::is_string) {
        return fail(format!("instructions is {:?}", body.get("instructions")));
    }
    match body.get("model").and_then(Value::as_str) {
        Some(model) if !model.trim().is_empty() => {}
        other => return fail(format!("model is {other:?}")),
    }
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return fail(format!("input is {:?}", body.get("input")));
    };
    for (index, item) in input.iter().enumerate() {
        let Some(item) = item.as_object() else {
            return fail(format!("input[{index}] is not an object"));
        };
        if item.contains_key("id") {
            return fail(format!("input[{index}] keeps its id"));
        }
        if item.get("type").and_then(Value::as_str) == Some("item_reference") {
            return fail(format!("input[{index}] is an item_reference"));
        }
    }
    for (field, check) in [
        ("tools", Value::is_array as fn(&Value) -> bool),
        ("include", Value::is_array),
        ("tool_choice", |v: &Value| !v.is_null()),
    ] {
        if !body.get(field).is_some_and(check) {
            return fail(format!("{field} is {:?}", body.get(field)));
        }
    }
    for field in body.keys() {
        if matches!(
            disposition(Endpoint::Responses, field),
            Disposition::Drop | Disposition::Reject(_)
        ) {
            return fail(format!("`{field}` should have been dropped or refused"));
        }
    }
    Ok(())
}

/// A refusal must be the caller's fault (4xx) and OpenAI-shaped.
fn check_client_error(stage: &str, error: &ProxyError) -> Result<(), String> {
    if !(400..500).contains(&error.status()) {
        return Err(format!(
            "{stage}-error-status: {} for {error:?}",
            error.status()
        ));
    }
    let error = error.body();
    if error["error"]["message"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{stage}-error-shape: no message in {error}"));
    }
    check_error_object(&error["error"]).map_err(|why| format!("{stage}-error-shape: {why}"))
}

/// `{message, type, param, code}`. The message may be empty when the upstream's was.
pub fn check_error_object(error: &Value) -> Result<(), String> {
    let text = |key: &str| error.get(key).and_then(Value::as_str);
    if text("message").is_none() || text("type").is_none() {
        return Err(format!("message/type missing in {error}"));
    }
    for key in ["param", "code"] {
        if !error.get(key).is_some_and(|v| v.is_string() || v.is_null()) {
            return Err(format!("{key} missing in {error}"));
        }
    }
    Ok(())
}

pub const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"null",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b",",
    b":",
    b"\"id\":\"x\",",
    b"\"type\":\"item_reference\",",
];

pub fn mutate_request(
    rng: &mut Rng,
    case: &RequestCase,
    corpus: &[RequestCase],
    donors: &[Value],
    dictionary: &Dictionary,
) -> RequestCase {
    let mut out = case.clone();
    if rng.one_in(40) {
        out.chat = !out.chat;
    }
    if rng.one_in(10) {
        out.developer = !out.developer;
    }
    let parsed = serde_json::from_slice::<Value>(&out.body).ok().or_else(|| {
        // Broken JSON mostly stays broken: usually go back to a seed instead.
        let seed = rng.pick(corpus).filter(|_| !rng.one_in(4))?;
        out.body = seed.body.clone();
        serde_json::from_slice(&out.body).ok()
    });
    match parsed {
        Some(value) if !rng.one_in(8) => {
            let donors: Vec<&Value> = donors.iter().collect();
            // A body that is no object only tests parse_object: keep those rare.
            for attempt in 0..4 {
                let mut mutant = value.clone();
                for _ in 0..rng.range(1, 3) {
                    mutate_json(rng, &mut mutant, &donors, dictionary);
                }
                if mutant.is_object() || attempt == 3 {
                    out.body = mutant.to_string().into_bytes();
                    break;
                }
            }
        }
        _ => {
            let donors: Vec<&[u8]> = corpus.iter().map(|c| &c.body[..]).collect();
            out.body = mutate_bytes(rng, &out.body, &donors, JSON_TOKENS);
        }
    }
    out
}

pub fn shrink_request(case: &RequestCase) -> Box<dyn Iterator<Item = RequestCase>> {
    let base = case.clone();
    let structural: Box<dyn Iterator<Item = Vec<u8>>> =
        match serde_json::from_slice::<Value>(&case.body) {
            Ok(value) => Box::new(shrink_json(&value).map(|v| v.to_string().into_bytes())),
            Err(_) => Box::new(shrink_bytes(&case.body)),
        };
    let simpler = case.developer.then(|| RequestCase {
        developer: false,
        ..case.clone()
    });
    Box::new(
        simpler
            .into_iter()
            .chain(structural.map(move |body| RequestCase {
                body,
                ..base.clone()
            })),
    )
}

pub fn render_request(case: &RequestCase) -> String {
    let mut record = json!({"target": "request",
                            "endpoint": if case.chat { "chat" } else { "responses" },
                            "system_as": if case.developer { "developer" } else { "instructions" }});
    put_bytes(&mut record, &case.body);
    record.to_string()
}

pub fn request_corpus() -> Vec<RequestCase> {
    let chat = corpus::chat_bodies().into_iter().map(|body| (true, body));
    let responses = corpus::responses_bodies()
        .into_iter()
        .map(|body| (false, body));
    chat.chain(responses)
        .enumerate()
        .map(|(i, (chat, body))| RequestCase {
            chat,
            developer: chat && i % 4 == 3,
            body: body.to_string().into_bytes(),
        })
        .collect()
}
