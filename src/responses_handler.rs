//! `POST /v1/responses`: normalise, open the upstream stream, then relay it event by event or
//! aggregate it into one Response object.

use crate::error::ProxyError;
use crate::exchange::Exchange;
use crate::json_body::parse_object;
use crate::param_policy::DROPPED_HEADER;
use crate::responses_relay::ResponsesTranscript;
use crate::responses_request::{NormaliseOptions, normalise};
use crate::routes::Proxy;
use crate::sse::SseError;
use crate::upstream::UpstreamStream;

/// How many events to read after the terminal one, so the upstream connection ends cleanly
/// and can be reused.
const DRAIN_EVENTS: usize = 8;

/// Serves one `/v1/responses` request.
pub fn serve(proxy: &Proxy, exchange: &mut Exchange) -> Result<(), ProxyError> {
    let body = parse_object(&exchange.body)?;
    let options = NormaliseOptions {
        default_instructions: &proxy.config.default_instructions,
    };
    let request = normalise(body, &options)?;
    exchange.model = Some(request.model.clone());
    let session_id = session_id(&request.body);
    let upstream = match proxy.upstream.open_stream(&request.body, &session_id) {
        Ok(upstream) => upstream,
        Err(refusal) => {
            exchange.respond_error(&refusal.error, &refusal.passthrough_headers);
            return Ok(());
        }
    };
    let mut headers = upstream.passthrough_headers.clone();
    if !request.dropped.is_empty() {
        headers.push((DROPPED_HEADER.to_string(), request.dropped.join(", ")));
    }
    if request.stream {
        relay(exchange, upstream, &headers);
        Ok(())
    } else {
        let response = aggregate(upstream)?;
        exchange.respond_json(200, &response, &headers);
        Ok(())
    }
}

/// Relays events as they arrive, one flush per event. A client write failure drops the
/// upstream reader at once, closing the upstream connection.
fn relay(exchange: &mut Exchange, mut upstream: UpstreamStream, headers: &[(String, String)]) {
    let mut stream = match exchange.start_stream(headers) {
        Ok(stream) => stream,
        Err(_) => return,
    };
    let mut transcript = ResponsesTranscript::new();
    loop {
        let frame = match upstream.events.next_event() {
            Ok(Some(event)) => match transcript.relay(&event) {
                Some(frame) => frame,
                None => continue,
            },
            Ok(None) => {
                if transcript.is_finished() {
                    break;
                }
                transcript.error_frame(&crate::responses_relay::eof_before_completion())
            }
            Err(error) => transcript.error_frame(&stream_error(&error)),
        };
        if stream.send(&frame).is_err() {
            log::info!(
                "{} client went away mid-stream; closing upstream",
                exchange.request_id
            );
            return;
        }
        if transcript.is_finished() {
            break;
        }
        if frame.starts_with(b"event: error\n") {
            break;
        }
    }
    if stream.finish().is_err() {
        log::debug!("{} client went away at end of stream", exchange.request_id);
    }
    drain(upstream);
}

/// Reads the stream to its end and builds the final Response object.
fn aggregate(mut upstream: UpstreamStream) -> Result<serde_json::Value, ProxyError> {
    let mut transcript = ResponsesTranscript::new();
    loop {
        match upstream.events.next_event() {
            Ok(Some(event)) => {
                transcript.record(&event);
                if transcript.is_finished() {
                    drain(upstream);
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => return Err(stream_error(&error)),
        }
    }
    transcript.into_response()
}

/// Reads what little follows the terminal event so the connection can go back to the pool.
fn drain(mut upstream: UpstreamStream) {
    for _ in 0..DRAIN_EVENTS {
        match upstream.events.next_event() {
            Ok(Some(_)) => {}
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
fn session_id(body: &serde_json::Value) -> String {
    body.get("prompt_cache_key")
        .and_then(|k| k.as_str())
        .filter(|k| k.len() <= 128 && crate::config::is_header_safe(k))
        .map_or_else(uuid_v4, str::to_string)
}

/// A random UUID (version 4).
pub fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
