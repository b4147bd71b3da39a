//! The parameter policy: for every request field the proxy knows, whether it is forwarded,
//! rewritten, dropped (and named in the `x-proxy-dropped-params` response header) or rejected.
//!
//! One table serves both endpoints so the decision for a field is made in one place. Unknown
//! fields are forwarded on `/v1/responses` and dropped (with the header) on
//! `/v1/chat/completions`.

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

/// The disposition of `field` on `endpoint`.
pub fn disposition(endpoint: Endpoint, field: &str) -> Disposition {
    match endpoint {
        Endpoint::Responses => RESPONSES_RULES
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(Disposition::Forward, |(_, rule)| *rule),
        Endpoint::ChatCompletions => Disposition::Drop,
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
    fn unknown_fields_are_forwarded_on_responses() {
        assert_eq!(
            disposition(Endpoint::Responses, "brand_new_field"),
            Disposition::Forward
        );
    }
}
