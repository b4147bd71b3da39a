//! The I/O loop both endpoints share: open the upstream stream, then pump its events through a
//! [`StreamTranslator`] to the client, flushing before every read that may wait, or read it
//! to the end for a non-streaming caller.
//!
//! The loop's invariants are kept here once: a client write failure drops the upstream reader
//! at once (closing the upstream connection); an upstream EOF before a terminal event, an idle
//! timeout or a broken connection becomes an in-band error frame, after which the stream ends;
//! a cleanly finished upstream is drained briefly so its connection can be reused.

use serde_json::Value;

use crate::error::ProxyError;
use crate::exchange::{EventStream, Exchange};
use crate::header_list::HeaderList;
use crate::param_policy::DROPPED_HEADER;
use crate::responses_relay::{ResponsesTranscript, eof_before_completion, is_passthrough_name};
use crate::responses_request::UpstreamRequest;
use crate::routes::Proxy;
use crate::sse::{SseError, SseEvent};
use crate::upstream::UpstreamStream;

/// How many events to read after the terminal one, so the upstream connection ends cleanly
/// and can be reused.
const DRAIN_EVENTS: usize = 8;

/// Turns upstream events into the frames one endpoint's clients expect.
pub trait StreamTranslator {
    /// The frames for one upstream event, or `None` when it means nothing to the client.
    fn on_event(&mut self, event: &SseEvent) -> Option<Vec<u8>>;
    /// The frames for one upstream event appended to `out`, a buffer the relay keeps across
    /// events (nothing when the event means nothing to the client); by default through
    /// [`StreamTranslator::on_event`].
    fn append_frames(&mut self, event: &SseEvent, out: &mut Vec<u8>) {
        if let Some(frames) = self.on_event(event) {
            out.extend_from_slice(&frames);
        }
    }
    /// Whether a terminal event (an answer or a failure) has been translated.
    fn is_finished(&self) -> bool;
    /// The in-band error for a failure the proxy detected; the stream ends after it.
    fn error_frame(&mut self, error: &ProxyError) -> Vec<u8>;
    /// Frames written after the last one, also after an error (chat's `data: [DONE]`).
    fn closing_frames(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl StreamTranslator for ResponsesTranscript {
    fn on_event(&mut self, event: &SseEvent) -> Option<Vec<u8>> {
        self.relay(event)
    }

    /// Without a frame of its own per event: the relay's buffer takes it.
    fn append_frames(&mut self, event: &SseEvent, out: &mut Vec<u8>) {
        self.relay_into(event, out);
    }

    fn is_finished(&self) -> bool {
        ResponsesTranscript::is_finished(self)
    }

    fn error_frame(&mut self, error: &ProxyError) -> Vec<u8> {
        ResponsesTranscript::error_frame(self, error)
    }
}

/// Opens the upstream stream for `request`. On a refusal the caller has been answered and
/// `None` comes back; otherwise the stream and the headers to send with the answer (the
/// upstream's `x-codex-*` headers and the dropped-parameters header).
pub fn open_upstream(
    proxy: &Proxy,
    exchange: &mut Exchange,
    request: &UpstreamRequest,
) -> Option<(UpstreamStream, HeaderList)> {
    let session_id = session_id(&request.body);
    exchange.dropped = request.dropped.clone();
    match proxy
        .upstream
        .open_stream(request.body_bytes(), &session_id)
    {
        Ok(mut upstream) => {
            exchange.upstream_status = Some(upstream.status);
            exchange.scrubber = upstream.scrubber.clone();
            // Moved, not copied: the stream has no further use for them.
            let mut headers = std::mem::take(&mut upstream.passthrough_headers);
            if !request.dropped.is_empty() {
                headers.push(DROPPED_HEADER, &request.dropped.join(", "));
            }
            Some((upstream, headers))
        }
        Err(refusal) => {
            exchange.upstream_status = refusal.status;
            exchange.scrubber = refusal.scrubber;
            exchange.respond_error(&refusal.error, &refusal.passthrough_headers);
            None
        }
    }
}

/// Pumps upstream events to the client through `translator`. Frames are flushed whenever
/// the next event is not already buffered, so events that arrived together leave together
/// (one `sendto` for a burst instead of one per frame) and none waits on the upstream.
pub fn relay(
    exchange: &mut Exchange,
    mut upstream: UpstreamStream,
    headers: &HeaderList,
    translator: &mut impl StreamTranslator,
) {
    let mut stream = match exchange.start_stream(headers) {
        Ok(stream) => stream,
        Err(_) => return,
    };
    // Each event's frames, in one buffer kept for the whole stream.
    let mut frame = Vec::new();
    loop {
        let next = match upstream.events.next_buffered_event() {
            Some(next) => next,
            None => {
                // The next event takes a read, which may wait for the upstream: what was
                // translated so far reaches the client first.
                if stream.flush().is_err() {
                    client_went_away(exchange, &stream);
                    return;
                }
                upstream.events.next_event()
            }
        };
        frame.clear();
        let last = match next {
            Ok(Some(event)) => {
                translator.append_frames(&event, &mut frame);
                upstream.events.recycle(event);
                match (frame.is_empty(), translator.is_finished()) {
                    (false, finished) => finished,
                    (true, true) => break,
                    (true, false) => continue,
                }
            }
            Ok(None) if translator.is_finished() => break,
            Ok(None) => {
                frame = in_band_error(exchange, translator, &eof_before_completion());
                true
            }
            Err(error) => {
                frame = in_band_error(exchange, translator, &stream_error(&error));
                true
            }
        };
        if stream.write(&frame).is_err() {
            client_went_away(exchange, &stream);
            return;
        }
        if last {
            break;
        }
    }
    let closing = translator.closing_frames();
    let sent = stream.write(&closing);
    exchange.bytes_sent = stream.bytes();
    if sent.is_err() || stream.finish().is_err() {
        log::debug!("{} client went away at end of stream", exchange.request_id);
    }
    drain(upstream);
}

/// Notes a client that stopped taking the stream; the upstream reader is dropped next, which
/// closes the upstream connection.
fn client_went_away(exchange: &mut Exchange, stream: &EventStream) {
    log::info!(
        "{} client went away mid-stream; closing upstream",
        exchange.request_id
    );
    exchange.client_disconnected = true;
    exchange.bytes_sent = stream.bytes();
}

/// The in-band error frame for a failure the proxy detected, noted for the request log.
fn in_band_error(
    exchange: &mut Exchange,
    translator: &mut impl StreamTranslator,
    error: &ProxyError,
) -> Vec<u8> {
    exchange.error_code = error.code();
    translator.error_frame(error)
}

/// Reads the stream to its end and returns the transcript, from which the final Response
/// object is built (its `output` rebuilt from the finished items).
pub fn aggregate(mut upstream: UpstreamStream) -> Result<ResponsesTranscript, ProxyError> {
    let mut transcript = ResponsesTranscript::new();
    // `record` ignores these events whatever their data says.
    upstream.events.skip_data_of(is_passthrough_name);
    loop {
        match upstream.events.next_event() {
            Ok(Some(event)) => {
                transcript.record(&event);
                upstream.events.recycle(event);
                if transcript.is_finished() {
                    drain(upstream);
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => return Err(stream_error(&error)),
        }
    }
    Ok(transcript)
}

/// Reads what little follows the terminal event so the connection can go back to the pool.
fn drain(mut upstream: UpstreamStream) {
    for _ in 0..DRAIN_EVENTS {
        match upstream.events.next_event() {
            Ok(Some(event)) => upstream.events.recycle(event),
            Ok(None) | Err(_) => return,
        }
    }
}

/// The caller's error for a stream read failure.
pub fn stream_error(error: &SseError) -> ProxyError {
    match error {
        SseError::EventTooLarge { limit } => ProxyError::UpstreamStreamBroken {
            cause: format!("an upstream event exceeded {limit} bytes"),
        },
        SseError::Io(io) if is_timeout(io) => ProxyError::UpstreamTimeout {
            cause: "the upstream stream went idle (UPSTREAM_IDLE_TIMEOUT_SECS)".into(),
        },
        SseError::Io(io) => ProxyError::UpstreamStreamBroken {
            cause: format!("the upstream connection failed mid-stream ({})", io.kind()),
        },
    }
}

/// Whether a read failed because the upstream went quiet (ureq wraps its timeout in the
/// `io::Error` its body reader returns).
fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)))
}

/// The upstream `session_id`: the caller's `prompt_cache_key` when it is header-safe (it
/// names the conversation), else a fresh UUID.
fn session_id(body: &Value) -> String {
    body.get("prompt_cache_key")
        .and_then(|k| k.as_str())
        .filter(|k| k.len() <= 128 && crate::config::is_header_safe(k))
        .map_or_else(crate::ids::uuid_v4, str::to_string)
}
