//! One request/response exchange: the request as read, and the ways to answer it (a sized
//! JSON body, an error, or an event stream written chunk by chunk, flushed before each wait).
//!
//! Answers bypass tiny_http's `respond`, whose chunked encoder holds 8 KiB before writing a
//! stream, and which built every header of a sized answer as two allocated strings: the head
//! comes from `http_head` (with a date formatted once a second per thread), and it, the body
//! or the chunk framing are written here, straight to the connection's buffered socket.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tiny_http::{Method, Request};

use crate::error::ProxyError;
use crate::header_list::HeaderList;
use crate::http_head::{Framing, http_date, response_head};
use crate::metrics::Metrics;
use crate::scrub::SecretScrubber;

/// A request being served.
pub struct Exchange {
    request: Option<Request>,
    method: Method,
    path: String,
    /// The request body, fully read.
    pub body: Vec<u8>,
    /// The id sent back in `x-request-id` and used in logs.
    pub request_id: String,
    /// When the request was accepted.
    pub started: Instant,
    /// The status sent, once answered.
    pub status: Option<u16>,
    /// Set by handlers for the request log: the model asked for.
    pub model: Option<String>,
    /// Whether the answer streamed.
    pub streamed: bool,
    /// Time to the first byte of the answer.
    pub first_byte: Option<Duration>,
    /// Body bytes sent.
    pub bytes_sent: u64,
    /// Set by handlers for the request log: the upstream's status.
    pub upstream_status: Option<u16>,
    /// Set by handlers for the request log: parameters dropped on the way.
    pub dropped: Vec<String>,
    /// Set by handlers: the client went away mid-stream (the upstream call was cancelled).
    pub client_disconnected: bool,
    /// The error code sent (as an answer or in-band in a stream), for the request log.
    pub error_code: Option<String>,
    /// Set once the upstream answered: removes the access token that call carried from
    /// every body and frame sent from then on.
    pub scrubber: Option<Arc<SecretScrubber>>,
    metrics: Arc<Metrics>,
}

impl Exchange {
    /// Wraps a request whose body has been read.
    pub fn new(
        request: Request,
        body: Vec<u8>,
        request_id: String,
        started: Instant,
        metrics: Arc<Metrics>,
    ) -> Self {
        let url = request.url();
        let path = url
            .split_once('?')
            .map_or(url, |(path, _)| path)
            .to_string();
        Exchange {
            method: request.method().clone(),
            path,
            request: Some(request),
            body,
            request_id,
            started,
            status: None,
            model: None,
            streamed: false,
            first_byte: None,
            bytes_sent: 0,
            upstream_status: None,
            dropped: Vec::new(),
            client_disconnected: false,
            error_code: None,
            scrubber: None,
            metrics,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A request header's value (first occurrence).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.as_ref().and_then(|r| {
            r.headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str())
        })
    }

    /// Whether an answer has been sent (or started).
    pub fn is_answered(&self) -> bool {
        self.request.is_none()
    }

    /// Answers with a JSON body.
    pub fn respond_json<T: Serialize + ?Sized>(
        &mut self,
        status: u16,
        body: &T,
        headers: &HeaderList,
    ) {
        self.respond_bytes(
            status,
            crate::json_body::to_bytes(body),
            "application/json",
            headers,
        );
    }

    /// Answers with a body that is already JSON text.
    pub fn respond_json_text(&mut self, status: u16, json: String, headers: &HeaderList) {
        self.respond_bytes(status, json.into_bytes(), "application/json", headers);
    }

    /// Answers with a text body of the given content type.
    pub fn respond_text(&mut self, status: u16, text: String, content_type: &str) {
        self.respond_bytes(status, text.into_bytes(), content_type, &HeaderList::EMPTY);
    }

    fn respond_bytes(
        &mut self,
        status: u16,
        bytes: Vec<u8>,
        content_type: &str,
        headers: &HeaderList,
    ) {
        let Some(request) = self.request.take() else {
            return;
        };
        let bytes = match self
            .scrubber
            .as_ref()
            .map(|scrubber| scrubber.scrub(&bytes))
        {
            Some(Cow::Owned(clean)) => clean,
            _ => bytes,
        };
        self.status = Some(status);
        let length = bytes.len();
        self.first_byte = Some(self.started.elapsed());
        self.bytes_sent = length as u64;
        self.metrics
            .bytes_relayed
            .fetch_add(length as u64, Ordering::Relaxed);
        let fixed = [
            ("Content-Type", content_type),
            ("x-request-id", self.request_id.as_str()),
        ];
        let head = with_date(|date| {
            response_head(
                status,
                date,
                fixed.into_iter().chain(headers.iter()),
                Framing::Length(length),
            )
        });
        // HEAD gets the length of the body it did not ask for.
        let body: &[u8] = if *request.method() == Method::Head {
            &[]
        } else {
            &bytes
        };
        // Head and a short body leave in one write: both fit tiny_http's connection buffer.
        let mut writer = request.into_writer();
        let written = writer
            .write_all(&head)
            .and_then(|()| writer.write_all(body))
            .and_then(|()| writer.flush());
        // A client that went away is not an error worth more than a debug line.
        if let Err(error) = written {
            log::debug!("{} client write failed: {}", self.request_id, error.kind());
        }
    }

    /// Answers with an OpenAI-shaped error.
    pub fn respond_error(&mut self, error: &ProxyError, headers: &HeaderList) {
        self.error_code = error.code();
        let mut all = HeaderList::of(
            error
                .headers()
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        );
        all.extend(headers);
        self.respond_json(error.status(), &error.body(), &all);
    }

    /// Starts a `text/event-stream` answer. Fails when already answered or the client is gone.
    pub fn start_stream(&mut self, headers: &HeaderList) -> io::Result<EventStream> {
        let request = self
            .request
            .take()
            .ok_or_else(|| io::Error::other("already answered"))?;
        self.status = Some(200);
        self.streamed = true;
        let chunked = *request.http_version() >= tiny_http::HTTPVersion(1, 1);
        let fixed = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
            ("x-request-id", self.request_id.as_str()),
        ];
        let framing = if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
        let head = with_date(|date| {
            response_head(200, date, fixed.into_iter().chain(headers.iter()), framing)
        });
        let mut writer = request.into_writer();
        writer.write_all(&head)?;
        writer.flush()?;
        self.first_byte = Some(self.started.elapsed());
        self.metrics.open_streams.fetch_add(1, Ordering::Relaxed);
        Ok(EventStream {
            writer,
            chunked,
            chunk: Vec::new(),
            bytes: 0,
            scrubber: self.scrubber.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

/// An event stream being written to a client.
pub struct EventStream {
    writer: Box<dyn Write + Send>,
    chunked: bool,
    /// The chunk being framed (chunked transfer coding only).
    chunk: Vec<u8>,
    bytes: u64,
    scrubber: Option<Arc<SecretScrubber>>,
    metrics: Arc<Metrics>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.metrics.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventStream {
    /// Writes one frame into the connection's buffer; [`EventStream::flush`] sends it. An
    /// error means the client is gone (or too slow).
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.is_empty() {
            return Ok(());
        }
        let scrubbed = self.scrubber.as_ref().map(|scrubber| scrubber.scrub(frame));
        let frame = scrubbed.as_deref().unwrap_or(frame);
        if self.chunked {
            // One write per chunk, its size line built in a buffer kept across frames.
            self.chunk.clear();
            push_hex(&mut self.chunk, frame.len());
            self.chunk.extend_from_slice(b"\r\n");
            self.chunk.extend_from_slice(frame);
            self.chunk.extend_from_slice(b"\r\n");
            self.writer.write_all(&self.chunk)?;
        } else {
            self.writer.write_all(frame)?;
        }
        self.bytes += frame.len() as u64;
        self.metrics
            .bytes_relayed
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Sends the frames written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Body bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ends the stream cleanly.
    pub fn finish(mut self) -> io::Result<u64> {
        if self.chunked {
            self.writer.write_all(b"0\r\n\r\n")?;
        }
        self.writer.flush()?;
        Ok(self.bytes)
    }
}

/// Appends `number` in lowercase hexadecimal, as a chunk size line needs it (`format!`'s
/// machinery cost more than the rest of framing a chunk).
fn push_hex(out: &mut Vec<u8>, number: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 2 * size_of::<usize>()];
    let mut start = digits.len();
    let mut rest = number;
    loop {
        start -= 1;
        digits[start] = DIGITS[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Calls `f` with the current HTTP date, formatted at most once a second per thread.
fn with_date<T>(f: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            *cached = (now, http_date(now));
        }
        f(&cached.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex_as_format_writes_them() {
        for number in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            4095,
            65_536,
            0xdead_beef,
            usize::MAX,
        ] {
            let mut out = b"x".to_vec();
            push_hex(&mut out, number);
            assert_eq!(out, format!("x{number:x}").into_bytes());
        }
    }
}
