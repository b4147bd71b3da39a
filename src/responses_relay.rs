//! The Responses stream, relayed and aggregated. Pure: upstream events in, client frames or a
//! final Response object out.
//!
//! The Codex backend's `response.completed` carries `output: []` (contract §5); the real items
//! arrive in `response.output_item.done` events. [`ResponsesTranscript`] remembers those items
//! so that both the streaming relay (which fills the terminal event's `output`, because SDK
//! stream helpers take their final response from it) and the non-streaming aggregator can
//! rebuild the complete answer in output order.
//!
//! Items and the terminal response are kept as the JSON text the backend sent and spliced
//! together as text (`response_text`); no event is built into a `Value` tree but a failure.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::chat_response::FinalResponse;
use crate::error::ProxyError;
use crate::json_body::{member, to_text};
use crate::response_text::{
    EventFields, as_u64, is_object, with_output, with_output_in_text, with_response,
};
use crate::sse::{SseEvent, encode_frame, encode_frame_into};

/// How a stream ended, once it has.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// `response.completed`: the response object as JSON text; in a relayed stream with the
    /// finished items already in `output`, otherwise as sent (`into_response_text` and
    /// `into_response` add them). Always the text of one JSON value: a `RawValue`'s, `{}`, or
    /// one `response_text` spliced.
    Completed(String),
    /// `response.incomplete`: the same for an answer cut short.
    Incomplete(String),
    /// `response.failed` or an `error` event.
    Failed {
        /// Upstream error code.
        code: String,
        /// Upstream error message.
        message: String,
    },
}

/// What the stream has said so far.
#[derive(Debug, Default)]
pub struct ResponsesTranscript {
    /// Finished output items as JSON text, with their `output_index` (arrival order breaks
    /// ties).
    items: Vec<(u64, String)>,
    last_sequence: Option<u64>,
    ending: Option<Ending>,
    skipped_frames: usize,
}

/// What one event (other than a delta) did to the transcript.
struct Observed<'a> {
    /// Its JSON `type`, when that is a string.
    kind: Option<Cow<'a, str>>,
    /// Its new text, when the frame must change (a terminal event whose output the items
    /// fill) and a frame is wanted.
    rewritten: Option<String>,
}

impl ResponsesTranscript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one upstream event and returns the client frame to relay for it, or `None`
    /// for frames that are not JSON objects (skipped, as the Codex CLI skips them).
    pub fn relay(&mut self, event: &SseEvent) -> Option<Vec<u8>> {
        let mut frame = Vec::new();
        self.relay_into(event, &mut frame).then_some(frame)
    }

    /// [`ResponsesTranscript::relay`], the frame appended to `out` (the relay's buffer,
    /// reused across events); false when there is none.
    pub fn relay_into(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> bool {
        if is_passthrough(event) {
            if !self.observe_delta(event) {
                return false;
            }
            encode_frame_into(out, event.event.as_deref(), &event.data);
            return true;
        }
        let Some(observed) = self.observe(&event.data, true) else {
            self.skipped_frames += 1;
            return false;
        };
        let name = observed.kind.as_deref().or(event.event.as_deref());
        let data = observed.rewritten.as_deref().unwrap_or(&event.data);
        encode_frame_into(out, name, data);
        true
    }

    /// Records one upstream event without producing a frame (non-streaming callers). The
    /// answer is built from the finished items and the terminal event alone, so the events
    /// the relay passes through (deltas above all) are not even parsed here: they can neither
    /// add to the answer nor spoil it, and their sequence numbers matter only to a stream.
    pub fn record(&mut self, event: &SseEvent) {
        if is_passthrough(event) {
            return;
        }
        if self.observe(&event.data, false).is_none() {
            self.skipped_frames += 1;
        }
    }

    /// The cheap path for events that change nothing the transcript keeps but the sequence
    /// number (deltas above all, and the large `response.created`): the JSON is checked and the
    /// number read without building a tree (most of a relay's CPU went into such parsing).
    /// Returns false for a frame that is not a JSON object (skipped).
    fn observe_delta(&mut self, event: &SseEvent) -> bool {
        // serde reads a struct from an array too; only objects are events.
        if !event.data.trim_start().starts_with('{') {
            self.skipped_frames += 1;
            return false;
        }
        match serde_json::from_str::<DeltaHead>(&event.data) {
            Ok(head) => {
                if let Some(sequence) = head.sequence_number {
                    self.note_sequence(sequence);
                }
                true
            }
            Err(_) => {
                self.skipped_frames += 1;
                false
            }
        }
    }

    /// Keeps the highest sequence number seen, so a proxy-made error event comes after all.
    fn note_sequence(&mut self, sequence: u64) {
        self.last_sequence = Some(
            self.last_sequence
                .map_or(sequence, |seen| seen.max(sequence)),
        );
    }

    /// Updates the transcript from one event's `data`; `None` when it is not a JSON object.
    /// `for_frame`: the caller relays the event, so a rewritten text is wanted.
    fn observe<'a>(&mut self, data: &'a str, for_frame: bool) -> Option<Observed<'a>> {
        let Some(fields) = EventFields::parse(data) else {
            // Not an object, or one the borrowing reader refuses (a field given twice): read
            // it as a tree once, as before, and go on with its canonical text.
            let value: Value = serde_json::from_str(data).ok().filter(Value::is_object)?;
            let canonical = to_text(&value);
            let observed =
                self.observe_fields(&canonical, &EventFields::parse(&canonical)?, for_frame);
            return Some(Observed {
                kind: observed.kind.map(|kind| Cow::Owned(kind.into_owned())),
                rewritten: observed.rewritten,
            });
        };
        Some(self.observe_fields(data, &fields, for_frame))
    }

    fn observe_fields<'a>(
        &mut self,
        data: &str,
        fields: &EventFields<'a>,
        for_frame: bool,
    ) -> Observed<'a> {
        if let Some(sequence) = as_u64(fields.sequence_number) {
            self.note_sequence(sequence);
        }
        let kind = fields.kind();
        let rewritten = match kind.as_deref().unwrap_or("") {
            "response.output_item.done" => {
                let index = as_u64(fields.output_index).unwrap_or(self.items.len() as u64);
                if let Some(item) = fields.item.filter(|item| is_object(item)) {
                    self.items.push((index, item.get().to_string()));
                }
                None
            }
            kind @ ("response.completed" | "response.incomplete") => {
                let completed = kind == "response.completed";
                let mut response = fields
                    .response
                    .map_or_else(|| "{}".to_string(), |r| r.get().to_string());
                let mut rewritten = None;
                if for_frame {
                    // The frame carries the filled response, so the items are used up now; a
                    // non-streaming caller's answer is assembled at the end, in the form it
                    // wants (`into_response_text` or `into_response`).
                    let items = self.output_items();
                    if let Some(sent) = fields.response
                        && let Some(filled) = with_output(sent, &items)
                    {
                        rewritten = with_response(data, sent, &filled);
                        response = filled;
                    }
                }
                self.ending = Some(if completed {
                    Ending::Completed(response)
                } else {
                    Ending::Incomplete(response)
                });
                rewritten
            }
            kind @ ("response.failed" | "error") => {
                self.ending = Some(failure(kind, data));
                None
            }
            _ => None,
        };
        Observed { kind, rewritten }
    }

    /// The collected items in output order, moved out: only the first terminal event is
    /// answered, so nothing needs them afterwards.
    fn output_items(&mut self) -> Vec<String> {
        let mut items = std::mem::take(&mut self.items);
        // Stable: arrival order breaks ties.
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, item)| item).collect()
    }

    /// Whether a terminal event has been seen.
    pub fn is_finished(&self) -> bool {
        self.ending.is_some()
    }

    /// How many frames were skipped as unparseable.
    pub fn skipped_frames(&self) -> usize {
        self.skipped_frames
    }

    /// An in-band `error` event for a failure the proxy detected (EOF, timeout, reset),
    /// numbered after the last upstream event so strict clients accept it.
    pub fn error_frame(&mut self, error: &ProxyError) -> Vec<u8> {
        let sequence = self.last_sequence.map_or(0, |s| s.saturating_add(1));
        self.last_sequence = Some(sequence);
        let frame = json!({
            "type": "error",
            "code": error.code(),
            "message": error.message(),
            "param": error.param(),
            "sequence_number": sequence,
        });
        encode_frame(Some("error"), &to_text(&frame))
    }

    /// The stream's ending; an upstream EOF before any terminal event is an error.
    pub fn ending(&self) -> Result<&Ending, ProxyError> {
        self.ending.as_ref().ok_or_else(eof_before_completion)
    }

    /// The terminal response as it was recorded; the failure or missing end as an error.
    fn take_response(&mut self) -> Result<String, ProxyError> {
        match self.ending.take() {
            Some(Ending::Completed(response)) | Some(Ending::Incomplete(response)) => Ok(response),
            Some(Ending::Failed { code, message }) => {
                Err(ProxyError::ResponseFailed { code, message })
            }
            None => Err(eof_before_completion()),
        }
    }

    /// The final Response object for a non-streaming caller, as JSON text: the items spliced
    /// into its `output` as text (the `/v1/responses` answer).
    pub fn into_response_text(mut self) -> Result<String, ProxyError> {
        let response = self.take_response()?;
        let items = self.output_items();
        // The ending holds one JSON value's text (see `Ending`).
        let filled = with_output_in_text(&response, &items);
        Ok(filled.unwrap_or(response))
    }

    /// The final Response object and the finished items, as the texts the backend sent, for a
    /// `chat.completion` ([`crate::chat_response::completion`] reads the few fields it needs
    /// from them, and takes the items when the object's `output` is missing, null or empty,
    /// by the same rule as `with_output`).
    pub fn into_response(mut self) -> Result<FinalResponse, ProxyError> {
        let response = self.take_response()?;
        let items = self.output_items();
        Ok(FinalResponse { response, items })
    }
}

/// The ending a `response.failed` or `error` event means, read from its `data` (rare: a
/// tree is fine here).
fn failure(kind: &str, data: &str) -> Ending {
    let value: Value = serde_json::from_str(data).unwrap_or_default();
    let (error, code, message) = if kind == "error" {
        (
            Some(&value),
            "upstream_error",
            "The upstream reported an error.",
        )
    } else {
        (
            member(&value, &["response", "error"]),
            "response_failed",
            "The upstream response failed.",
        )
    };
    Ending::Failed {
        code: text_field(error, "code").unwrap_or_else(|| code.into()),
        message: text_field(error, "message").unwrap_or_else(|| message.into()),
    }
}

/// What the delta path reads of an event; every other field is checked as JSON and skipped.
#[derive(serde::Deserialize)]
struct DeltaHead {
    sequence_number: Option<u64>,
}

/// Whether the event changes nothing the transcript keeps but the sequence number, judged by
/// its SSE `event:` name (the backend names every frame): everything except the finished items
/// and the terminal events. Such events are relayed byte for byte without building a tree.
fn is_passthrough(event: &SseEvent) -> bool {
    event.event.as_deref().is_some_and(is_passthrough_name)
}

/// [`is_passthrough`] by the event's name: an aggregating reader need not keep their data
/// (`SseReader::skip_data_of`).
pub fn is_passthrough_name(name: &str) -> bool {
    !matches!(
        name,
        "response.output_item.done"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "error"
    )
}

/// The error for a stream that ended without a terminal event (contract §5.4).
pub fn eof_before_completion() -> ProxyError {
    ProxyError::UpstreamStreamBroken {
        cause: "stream closed before response.completed".into(),
    }
}

fn text_field(value: Option<&Value>, key: &str) -> Option<String> {
    value?.get(key)?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseReader;

    /// The answer's Response object with its items in `output` (the rule `completion`
    /// reads by), as a tree.
    fn filled(answer: FinalResponse) -> Value {
        let text = with_output_in_text(&answer.response, &answer.items).unwrap_or(answer.response);
        serde_json::from_str(&text).expect("one JSON value")
    }

    fn event(value: Value) -> SseEvent {
        SseEvent {
            event: value["type"].as_str().map(str::to_string),
            data: value.to_string(),
        }
    }

    fn message(id: &str, text: &str) -> Value {
        json!({"type": "message", "id": id, "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]})
    }

    fn script() -> Vec<Value> {
        vec![
            json!({"type": "response.created", "sequence_number": 0,
                   "response": {"id": "resp_1", "status": "in_progress", "output": []}}),
            json!({"type": "response.output_text.delta", "sequence_number": 1, "delta": "he"}),
            json!({"type": "response.output_item.done", "sequence_number": 2, "output_index": 1,
                   "item": message("msg_2", "second")}),
            json!({"type": "response.output_item.done", "sequence_number": 3, "output_index": 0,
                   "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            json!({"type": "response.completed", "sequence_number": 4,
                   "response": {"id": "resp_1", "status": "completed", "output": [],
                                "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}}}),
        ]
    }

    fn parse_frames(frames: &[u8]) -> Vec<Value> {
        let mut reader = SseReader::new(frames, 1 << 20);
        let mut out = Vec::new();
        while let Some(event) = reader.next_event().expect("frames parse") {
            out.push(serde_json::from_str(&event.data).expect("json"));
        }
        out
    }

    #[test]
    fn relay_fills_completed_output_in_output_order() {
        let mut transcript = ResponsesTranscript::new();
        let mut frames = Vec::new();
        for value in script() {
            frames.extend(transcript.relay(&event(value)).expect("frame"));
        }
        assert!(transcript.is_finished());
        let relayed = parse_frames(&frames);
        assert_eq!(relayed.len(), 5);
        let output = &relayed[4]["response"]["output"];
        assert_eq!(output[0]["type"], "reasoning");
        assert_eq!(output[1]["id"], "msg_2");
        assert_eq!(relayed[1], script()[1], "other events pass unchanged");
    }

    #[test]
    fn aggregate_rebuilds_the_response_with_usage() {
        let mut transcript = ResponsesTranscript::new();
        for value in script() {
            transcript.record(&event(value));
        }
        let response = filled(transcript.into_response().expect("completed"));
        assert_eq!(response["output"].as_array().map(Vec::len), Some(2));
        assert_eq!(response["usage"]["total_tokens"], 8);
        assert_eq!(response["status"], "completed");
    }

    #[test]
    fn aggregate_ignores_what_only_a_stream_needs() {
        let mut transcript = ResponsesTranscript::new();
        let broken_delta = SseEvent {
            event: Some("response.output_text.delta".into()),
            data: "{\"delta\":".into(),
        };
        transcript.record(&broken_delta);
        for value in script() {
            transcript.record(&event(value));
        }
        let response = filled(transcript.into_response().expect("completed"));
        let ids: Vec<&Value> = response["output"]
            .as_array()
            .map(|items| items.iter().map(|item| &item["id"]).collect())
            .unwrap_or_default();
        assert_eq!(ids, [&json!("rs_1"), &json!("msg_2")], "in output order");
    }

    #[test]
    fn relayed_completion_keeps_its_response_for_the_frame() {
        let mut transcript = ResponsesTranscript::new();
        let frames: Vec<u8> = script()
            .into_iter()
            .filter_map(|value| transcript.relay(&event(value)))
            .flatten()
            .collect();
        let completed = &parse_frames(&frames)[4];
        assert_eq!(completed["response"]["usage"]["total_tokens"], 8);
        assert_eq!(completed["response"]["output"][1]["id"], "msg_2");
        match transcript.ending() {
            Ok(Ending::Completed(response)) => {
                let response: Value = serde_json::from_str(response).expect("json");
                assert_eq!(response["id"], "resp_1");
            }
            other => panic!("expected a completed ending, got {other:?}"),
        }
    }

    #[test]
    fn events_the_text_reader_refuses_take_the_tree_path_with_the_same_answer() {
        // A field given twice, and an escaped key: read as a tree once, last value wins.
        let mut transcript = ResponsesTranscript::new();
        let item = SseEvent {
            event: Some("response.output_item.done".into()),
            data: r#"{"type":"response.output_item.done","output_index":9,"output_index":0,
                      "item":{"id":"m1","type":"message"}}"#
                .into(),
        };
        let completed = SseEvent {
            event: Some("response.completed".into()),
            data: r#"{"type":"response.completed","sequence_number":3,
                      "response":{"id":"r","output":[],"n\u0061me":"x"}}"#
                .into(),
        };
        let frames: Vec<u8> = [&item, &completed]
            .into_iter()
            .filter_map(|event| transcript.relay(event))
            .flatten()
            .collect();
        let parsed = parse_frames(&frames);
        assert_eq!(parsed[1]["response"]["output"][0]["id"], "m1");
        assert_eq!(parsed[1]["response"]["name"], "x");
        assert_eq!(parsed[1]["sequence_number"], 3);
        let response = filled(transcript.into_response().expect("completed"));
        assert_eq!(response["output"][0]["id"], "m1");
    }

    #[test]
    fn completed_output_that_is_already_filled_is_kept() {
        let mut transcript = ResponsesTranscript::new();
        transcript.record(&event(
            json!({"type": "response.output_item.done", "output_index": 0,
                                         "item": message("msg_a", "a")}),
        ));
        transcript.record(&event(json!({"type": "response.completed",
            "response": {"id": "r", "output": [message("msg_b", "b")]}})));
        let response = filled(transcript.into_response().expect("completed"));
        assert_eq!(response["output"][0]["id"], "msg_b");
    }

    #[test]
    fn incomplete_keeps_its_status_and_details() {
        let mut transcript = ResponsesTranscript::new();
        transcript.record(&event(
            json!({"type": "response.output_item.done", "output_index": 0,
                                         "item": message("msg_a", "partial")}),
        ));
        transcript.record(&event(json!({"type": "response.incomplete", "response": {
            "id": "r", "status": "incomplete", "output": [],
            "incomplete_details": {"reason": "max_output_tokens"}}})));
        let response = filled(transcript.into_response().expect("incomplete is an answer"));
        assert_eq!(response["status"], "incomplete");
        assert_eq!(
            response["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(response["output"][0]["content"][0]["text"], "partial");
    }

    #[test]
    fn failed_maps_to_an_error_with_the_upstream_code() {
        let mut transcript = ResponsesTranscript::new();
        transcript.record(&event(json!({"type": "response.failed", "response": {
            "id": "r", "status": "failed",
            "error": {"code": "context_length_exceeded", "message": "too long"}}})));
        let error = transcript.into_response().expect_err("failed");
        assert_eq!(error.status(), 400);
        assert_eq!(error.code().as_deref(), Some("context_length_exceeded"));
    }

    #[test]
    fn eof_without_completion_is_an_error_and_the_error_frame_is_numbered() {
        let mut transcript = ResponsesTranscript::new();
        let first = script().remove(0);
        transcript.relay(&event(first));
        assert!(transcript.ending().is_err());
        let frame = transcript.error_frame(&eof_before_completion());
        let parsed = parse_frames(&frame);
        assert_eq!(parsed[0]["type"], "error");
        assert_eq!(parsed[0]["sequence_number"], 1);
        assert_eq!(parsed[0]["code"], "upstream_stream_broken");
        assert!(parsed[0].get("param").is_some());
        let error = transcript.into_response().expect_err("no completion");
        assert_eq!(error.status(), 502);
    }

    #[test]
    fn deltas_take_the_cheap_path_but_still_count_and_validate() {
        let mut transcript = ResponsesTranscript::new();
        let delta =
            json!({"type": "response.output_text.delta", "sequence_number": 7, "delta": "x"});
        let frame = transcript.relay(&event(delta.clone())).expect("frame");
        assert_eq!(parse_frames(&frame), vec![delta]);
        let broken = SseEvent {
            event: Some("response.output_text.delta".into()),
            data: "{\"delta\":".into(),
        };
        assert!(transcript.relay(&broken).is_none());
        assert_eq!(transcript.skipped_frames(), 1);
        let parsed = parse_frames(&transcript.error_frame(&eof_before_completion()));
        assert_eq!(
            parsed[0]["sequence_number"], 8,
            "numbered after the last delta"
        );
    }

    #[test]
    fn unknown_and_unparseable_events_do_not_break_the_stream() {
        let mut transcript = ResponsesTranscript::new();
        let unknown = transcript.relay(&event(json!({"type": "codex.rate_limits", "x": 1})));
        assert!(unknown.is_some());
        let garbage = transcript.relay(&SseEvent {
            event: None,
            data: "{not json".into(),
        });
        assert!(garbage.is_none());
        assert_eq!(transcript.skipped_frames(), 1);
        assert!(!transcript.is_finished());
    }
}
