//! The parameter policy: for every request field the proxy knows, whether it is forwarded,
//! rewritten, dropped (and named in the `x-proxy-dropped-params` response header) or rejected.
//!
//! One module holds both endpoints' tables so the decision for a field is made in one place.
//! Unknown fields are forwarded on `/v1/responses` and dropped (with the header) on
//! `/v1/chat/completions`. On chat, a few rejected fields have a harmless default (`n: 1`,
//! `logprobs: false`, `modalities: ["text"]`) which is accepted silently, and a `null` value
//! means "not set" for every field.

use serde_json::Value;

/// What happens to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Sent upstream unchanged.
    Forward,
    /// Translated or normalised by the endpoint's translator.
    Rewrite,
    /// Removed, and named in the response header.
    Drop,
    /// Refused with 400 naming the parameter, with this explanation.
    Reject(&'static str),
}

/// The endpoints a rule can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/chat/completions`.
    ChatCompletions,
}

/// Name of the header that lists dropped parameters.
pub const DROPPED_HEADER: &str = "x-proxy-dropped-params";

const NEEDS_STORAGE: &str = "needs server-side storage, which the subscription backend does not \
    offer (it runs with store=false); send the whole conversation in `input` instead";

/// `(field, disposition on /v1/responses)`. Fields the backend refuses or that make no sense
/// with `store:false` are listed; everything else is forwarded.
const RESPONSES_RULES: &[(&str, Disposition)] = &[
    ("model", Disposition::Forward),
    ("input", Disposition::Rewrite),
    ("instructions", Disposition::Rewrite),
    ("stream", Disposition::Rewrite),
    ("store", Disposition::Rewrite),
    ("include", Disposition::Rewrite),
    ("tool_choice", Disposition::Rewrite),
    ("tools", Disposition::Forward),
    ("parallel_tool_calls", Disposition::Forward),
    ("reasoning", Disposition::Forward),
    ("text", Disposition::Forward),
    ("prompt_cache_key", Disposition::Forward),
    ("service_tier", Disposition::Forward),
    ("max_output_tokens", Disposition::Drop),
    ("max_tool_calls", Disposition::Drop),
    ("temperature", Disposition::Drop),
    ("top_p", Disposition::Drop),
    ("top_logprobs", Disposition::Drop),
    ("truncation", Disposition::Drop),
    ("metadata", Disposition::Drop),
    ("user", Disposition::Drop),
    ("safety_identifier", Disposition::Drop),
    ("stream_options", Disposition::Drop),
    (
        "background",
        Disposition::Reject(
            "background responses need server-side storage, which the subscription backend does not offer",
        ),
    ),
    ("previous_response_id", Disposition::Reject(NEEDS_STORAGE)),
    ("conversation", Disposition::Reject(NEEDS_STORAGE)),
    (
        "prompt",
        Disposition::Reject(
            "stored prompt templates are not available through the subscription backend; send the prompt text in `input`",
        ),
    ),
];

const CHANGES_THE_ANSWER: &str = "would change the shape of the answer, and the subscription \
    backend cannot produce it";

/// `(field, disposition on /v1/chat/completions)`. `Rewrite` fields are translated by
/// `chat_request`; everything not listed is dropped and named in the header.
const CHAT_RULES: &[(&str, Disposition)] = &[
    ("model", Disposition::Rewrite),
    ("messages", Disposition::Rewrite),
    ("stream", Disposition::Rewrite),
    ("stream_options", Disposition::Rewrite),
    ("tools", Disposition::Rewrite),
    ("tool_choice", Disposition::Rewrite),
    ("functions", Disposition::Rewrite),
    ("function_call", Disposition::Rewrite),
    ("response_format", Disposition::Rewrite),
    ("reasoning_effort", Disposition::Rewrite),
    ("reasoning", Disposition::Rewrite),
    ("verbosity", Disposition::Rewrite),
    ("web_search_options", Disposition::Rewrite),
    ("parallel_tool_calls", Disposition::Forward),
    ("prompt_cache_key", Disposition::Forward),
    ("service_tier", Disposition::Forward),
    ("temperature", Disposition::Drop),
    ("top_p", Disposition::Drop),
    ("frequency_penalty", Disposition::Drop),
    ("presence_penalty", Disposition::Drop),
    ("seed", Disposition::Drop),
    ("max_tokens", Disposition::Drop),
    ("max_completion_tokens", Disposition::Drop),
    ("stop", Disposition::Drop),
    ("user", Disposition::Drop),
    ("safety_identifier", Disposition::Drop),
    ("metadata", Disposition::Drop),
    ("store", Disposition::Drop),
    ("logit_bias", Disposition::Drop),
    ("prompt_cache_retention", Disposition::Drop),
    (
        "n",
        Disposition::Reject(
            "asks for several choices; the subscription backend produces one answer per request, \
             so send n=1 (or leave it out) and make several requests",
        ),
    ),
    ("logprobs", Disposition::Reject(CHANGES_THE_ANSWER)),
    ("top_logprobs", Disposition::Reject(CHANGES_THE_ANSWER)),
    (
        "modalities",
        Disposition::Reject(
            "asks for audio output, which the subscription backend does not produce",
        ),
    ),
    (
        "audio",
        Disposition::Reject(
            "asks for audio output, which the subscription backend does not produce",
        ),
    ),
    (
        "prediction",
        Disposition::Reject("predicted outputs are not available through the subscription backend"),
    ),
];

/// The disposition of `field` on `endpoint`, whatever its value.
pub fn disposition(endpoint: Endpoint, field: &str) -> Disposition {
    let (rules, unknown) = match endpoint {
        Endpoint::Responses => (RESPONSES_RULES, Disposition::Forward),
        Endpoint::ChatCompletions => (CHAT_RULES, Disposition::Drop),
    };
    rules
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(unknown, |(_, rule)| *rule)
}

/// What happens to `field` with this `value` on `/v1/chat/completions`: `None` when the field
/// is ignored without a word, because it is `null` (not set) or a rejected field carries the
/// value the proxy behaves as anyway (`n: 1`, `logprobs: false`, `top_logprobs: 0`,
/// `modalities: ["text"]`).
pub fn chat_disposition(field: &str, value: &Value) -> Option<Disposition> {
    if value.is_null() {
        return None;
    }
    let rule = disposition(Endpoint::ChatCompletions, field);
    if matches!(rule, Disposition::Reject(_)) && is_harmless_default(field, value) {
        return None;
    }
    Some(rule)
}

/// Whether a value of a rejected chat field asks for nothing beyond what the proxy does.
fn is_harmless_default(field: &str, value: &Value) -> bool {
    match field {
        "n" => value.as_u64() == Some(1),
        "logprobs" => value == &Value::Bool(false),
        "top_logprobs" => value.as_u64() == Some(0),
        "modalities" => value
            .as_array()
            .is_some_and(|kinds| kinds.iter().all(|kind| kind == "text")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_knobs_are_dropped_and_storage_features_rejected() {
        for field in ["temperature", "top_p", "max_output_tokens", "metadata"] {
            assert_eq!(
                disposition(Endpoint::Responses, field),
                Disposition::Drop,
                "{field}"
            );
        }
        for field in ["previous_response_id", "background", "conversation"] {
            assert!(matches!(
                disposition(Endpoint::Responses, field),
                Disposition::Reject(_)
            ));
        }
    }

    #[test]
    fn chat_drops_sampling_knobs_and_unknown_fields() {
        for field in [
            "temperature",
            "max_tokens",
            "max_completion_tokens",
            "stop",
            "seed",
            "logit_bias",
            "store",
            "brand_new_field",
        ] {
            assert_eq!(
                chat_disposition(field, &serde_json::json!(1)),
                Some(Disposition::Drop),
                "{field}"
            );
        }
        assert_eq!(
            disposition(Endpoint::ChatCompletions, "parallel_tool_calls"),
            Disposition::Forward
        );
        assert_eq!(
            disposition(Endpoint::ChatCompletions, "messages"),
            Disposition::Rewrite
        );
    }

    #[test]
    fn chat_rejects_shape_changes_but_accepts_their_defaults_and_nulls() {
        use serde_json::json;
        for (field, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("modalities", json!(["text", "audio"])),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
            ("prediction", json!({"type": "content", "content": "x"})),
        ] {
            assert!(
                matches!(
                    chat_disposition(field, &value),
                    Some(Disposition::Reject(_))
                ),
                "{field}"
            );
        }
        for (field, value) in [
            ("n", json!(1)),
            ("logprobs", json!(false)),
            ("top_logprobs", json!(0)),
            ("modalities", json!(["text"])),
            ("temperature", Value::Null),
            ("audio", Value::Null),
        ] {
            assert_eq!(chat_disposition(field, &value), None, "{field}");
        }
    }

    #[test]
    fn unknown_fields_are_forwarded_on_responses() {
        assert_eq!(
            disposition(Endpoint::Responses, "brand_new_field"),
            Disposition::Forward
        );
    }
}
