//! Server-Sent Events: a pure line parser, a bounded line reader over any `BufRead`, and the
//! frame encoder used towards clients.
//!
//! The upstream frames are `event: <type>\ndata: <json>\n\n` (contract §5.1); there is no
//! `[DONE]` sentinel, the stream ends at EOF. The parser follows the SSE rules that matter here:
//! `data:` lines join with `\n`, one optional space after the colon is dropped, comment lines
//! (`:`) and unknown fields are ignored, a blank line dispatches.

use std::io::{self, BufRead};

use crate::read_buffer::Buffered;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The joined `data:` lines.
    pub data: String,
}

/// Why a stream could not be read as SSE.
#[derive(Debug)]
pub enum SseError {
    /// One event grew past the configured limit.
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The underlying reader failed (timeout, reset).
    Io(io::Error),
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => write!(f, "an event exceeded {limit} bytes"),
            SseError::Io(error) => write!(f, "read failed: {}", error.kind()),
        }
    }
}

/// The largest buffer [`SseParser::recycle`] keeps for the next event.
const KEPT_BUFFER_BYTES: usize = 64 << 10;

/// Accumulates lines into events. Pure: no I/O.
#[derive(Debug)]
pub struct SseParser {
    event: Option<String>,
    data: String,
    /// A dispatched event's name, given back by [`SseParser::recycle`] for the next one.
    spare_name: String,
    has_data: bool,
    size: usize,
    max_event_bytes: usize,
    /// Lines whose bytes were not UTF-8 poison the event they belong to; it is skipped.
    poisoned: bool,
    /// Names of events whose data the caller does not read (see [`SseParser::skip_data_of`]).
    skip_data: Option<fn(&str) -> bool>,
}

impl SseParser {
    /// A parser that refuses events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            event: None,
            data: String::new(),
            spare_name: String::new(),
            has_data: false,
            size: 0,
            max_event_bytes,
            poisoned: false,
            skip_data: None,
        }
    }

    /// From now on, the `data:` lines of an event whose `event:` line came first and is named
    /// as `skip` says are counted against the size limit but neither checked nor kept: such
    /// an event is dispatched with its name and empty data. For a caller that ignores those
    /// events anyway (aggregation ignores deltas), it spares a copy and a UTF-8 check per line.
    /// (An event that names itself twice, the last name winning as SSE says, loses the data
    /// read under a skipped first name; no backend frame looks like that.)
    pub fn skip_data_of(&mut self, skip: fn(&str) -> bool) {
        self.skip_data = Some(skip);
    }

    /// Feeds one line (with or without its `\n`/`\r\n`). Returns an event on a blank line.
    /// Events with invalid UTF-8 are dropped, as the CLI drops frames it cannot parse.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        let line = strip_line_end(line);
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        self.size += line.len();
        if self.size > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        if let (Some(skip), Some(name)) = (self.skip_data, self.event.as_deref())
            && is_data_line(line)
            && skip(name)
        {
            self.has_data = true;
            return Ok(None);
        }
        let Ok(line) = std::str::from_utf8(line) else {
            self.poisoned = true;
            return Ok(None);
        };
        // The colon is ASCII, so its byte index is a character boundary (`split_once(':')`
        // searched char by char, a tenth of an aggregated request's instructions).
        let (field, value) = match memchr::memchr(b':', line.as_bytes()) {
            Some(0) => return Ok(None),
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "event" => {
                let mut name = self
                    .event
                    .take()
                    .unwrap_or_else(|| std::mem::take(&mut self.spare_name));
                name.clear();
                name.push_str(value);
                self.event = Some(name);
            }
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(None)
    }

    /// Takes back an event the caller is done with, so that the next event is read into its
    /// buffers instead of new ones (two allocations and two frees saved per event). Buffers
    /// grown past [`KEPT_BUFFER_BYTES`] by a large event are freed instead of kept.
    pub fn recycle(&mut self, event: SseEvent) {
        if self.data.capacity() == 0 && event.data.capacity() <= KEPT_BUFFER_BYTES {
            self.data = event.data;
            self.data.clear();
        }
        if let Some(name) = event.event
            && self.spare_name.capacity() == 0
            && name.capacity() <= KEPT_BUFFER_BYTES
        {
            self.spare_name = name;
        }
    }

    /// Ends the stream: an event still being built is dispatched if it has data, so a
    /// backend that omits the last blank line loses nothing.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.dispatch()
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let had_data = std::mem::replace(&mut self.has_data, false);
        let poisoned = std::mem::replace(&mut self.poisoned, false);
        self.size = 0;
        if !had_data || poisoned {
            // Emptied, not taken: its buffer serves the next event.
            self.data.clear();
            if poisoned {
                return None;
            }
            // An `event:` line alone carries no payload; the Codex test helper writes
            // type-only events this way, and the JSON `type` is what we key on.
            return event.map(|name| SseEvent {
                data: format!("{{\"type\":{}}}", serde_json::Value::String(name.clone())),
                event: Some(name),
            });
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

/// Whether a line (without its line end) is a `data` field.
fn is_data_line(line: &[u8]) -> bool {
    line.strip_prefix(b"data")
        .is_some_and(|rest| rest.is_empty() || rest[0] == b':')
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads events from a blocking reader, one line at a time, never holding more than one event.
pub struct SseReader<R> {
    reader: R,
    parser: SseParser,
    line: Vec<u8>,
    done: bool,
    /// Events completed by one physical line that held lone CRs (each ends a line in SSE).
    pending: std::collections::VecDeque<SseEvent>,
}

impl<R: Buffered> SseReader<R> {
    /// The next event if the reader's buffer already holds all of it (or the stream has
    /// ended); `None` when it takes a read, which may wait for the upstream. What the caller
    /// has not sent yet should be flushed before it calls [`SseReader::next_event`] then.
    pub fn next_buffered_event(&mut self) -> Option<Result<Option<SseEvent>, SseError>> {
        let limit = self.parser.max_event_bytes.saturating_add(2);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(Some(event)));
            }
            if self.done {
                return Some(Ok(None));
            }
            if !self.reader.has_buffered() {
                return None;
            }
            // Answered from the buffer: no read happens.
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) => return Some(Err(SseError::Io(error))),
            };
            // A line not whole yet (or too long) is left to `next_event`.
            let end = memchr::memchr(b'\n', available).filter(|end| *end < limit)?;
            let taken = take_line(&mut self.parser, &mut self.pending, &available[..=end]);
            self.reader.consume(end + 1);
            match taken {
                Ok(Some(event)) => return Some(Ok(Some(event))),
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

impl<R: BufRead> SseReader<R> {
    /// Wraps a reader; events above `max_event_bytes` end the stream with an error.
    pub fn new(reader: R, max_event_bytes: usize) -> Self {
        SseReader {
            reader,
            parser: SseParser::new(max_event_bytes),
            line: Vec::with_capacity(1024),
            done: false,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// The next event; `Ok(None)` at a clean EOF.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(Some(event));
        }
        if self.done {
            return Ok(None);
        }
        loop {
            let limit = self.parser.max_event_bytes.saturating_add(2);
            // The common case: a whole line waits in the reader's buffer, and is read where it
            // lies instead of being copied out first.
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(SseError::Io(error)),
            };
            if available.is_empty() {
                self.done = true;
                return Ok(self.parser.finish());
            }
            if let Some(end) = memchr::memchr(b'\n', available).filter(|end| *end < limit) {
                let taken = take_line(&mut self.parser, &mut self.pending, &available[..=end]);
                self.reader.consume(end + 1);
                match taken? {
                    Some(event) => return Ok(Some(event)),
                    None => continue,
                }
            }
            // A line split across reads (or too long): gathered, bounded, then taken.
            self.line.clear();
            let read =
                read_line_into(&mut self.reader, &mut self.line, limit).map_err(SseError::Io)?;
            if read == 0 {
                self.done = true;
                return Ok(self.parser.finish());
            }
            if !self.line.ends_with(b"\n") && read >= limit {
                return Err(SseError::EventTooLarge {
                    limit: self.parser.max_event_bytes,
                });
            }
            if let Some(event) = take_line(&mut self.parser, &mut self.pending, &self.line)? {
                return Ok(Some(event));
            }
        }
    }

    /// Takes back an event the caller is done with (see [`SseParser::recycle`]).
    pub fn recycle(&mut self, event: SseEvent) {
        self.parser.recycle(event);
    }

    /// Leaves the data of the events `skip` names unread (see [`SseParser::skip_data_of`]).
    pub fn skip_data_of(&mut self, skip: fn(&str) -> bool) {
        self.parser.skip_data_of(skip);
    }

    /// Gives back the underlying reader (to drain it after the last event).
    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// Feeds one physical line (with its line end) to the parser; an event it completes comes
/// back, and further ones wait in `pending`.
fn take_line(
    parser: &mut SseParser,
    pending: &mut std::collections::VecDeque<SseEvent>,
    line: &[u8],
) -> Result<Option<SseEvent>, SseError> {
    let line = strip_line_end(line);
    // The common case, a line without a lone CR, skips the split (a byte-by-byte scan).
    if memchr::memchr(b'\r', line).is_none() {
        return parser.push_line(line);
    }
    // A lone CR also ends a line (SSE: CRLF, LF or CR), so one physical line may hold
    // several.
    for segment in line.split(|byte| *byte == b'\r') {
        if let Some(event) = parser.push_line(segment)? {
            pending.push_back(event);
        }
    }
    Ok(pending.pop_front())
}

/// Appends the bytes up to and including the next LF to `line`, reading at most `limit`
/// bytes; returns how many were read (0 at EOF). `BufRead::read_until` does the same, but its
/// byte search is the portable one, and finding line ends was the largest single cost of
/// reading an event stream; `memchr` (already linked through serde_json and ureq) searches
/// with SIMD.
fn read_line_into(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(read);
        }
        let room = limit - read;
        let window = &available[..available.len().min(room)];
        let (used, done) = match memchr::memchr(b'\n', window) {
            Some(end) => (end + 1, true),
            None => (window.len(), window.len() == room),
        };
        line.extend_from_slice(&window[..used]);
        reader.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

/// Encodes one SSE frame for a client: `event:` when given, then the data lines, then a blank line.
pub fn encode_frame(event: Option<&str>, data: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 32);
    encode_frame_into(&mut frame, event, data);
    frame
}

/// [`encode_frame`], appended to `frame` (a buffer the caller reuses across events).
pub fn encode_frame_into(frame: &mut Vec<u8>, event: Option<&str>, data: &str) {
    // A name with a line break would end the field early and let the rest inject fields or
    // whole frames; such a name is left out (the JSON `type` still says what the event is).
    let event = event.filter(|name| !name.contains(['\r', '\n']));
    if let Some(event) = event {
        frame.extend_from_slice(b"event: ");
        frame.extend_from_slice(event.as_bytes());
        frame.push(b'\n');
    }
    // Compact JSON, the usual data, has no line break at all.
    if memchr::memchr2(b'\n', b'\r', data.as_bytes()).is_none() {
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(data.as_bytes());
        frame.extend_from_slice(b"\n\n");
        return;
    }
    // Every line break SSE knows (CRLF, LF, CR) starts a new `data:` line; the client joins
    // them with LF.
    for line in data.split("\r\n").flat_map(|part| part.split(['\n', '\r'])) {
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(line.as_bytes());
        frame.push(b'\n');
    }
    frame.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_buffer::ReadBuffer;

    fn events(text: &[u8]) -> Vec<SseEvent> {
        let mut reader = SseReader::new(text, 1 << 20);
        let mut out = Vec::new();
        while let Some(event) = reader.next_event().expect("valid stream") {
            out.push(event);
        }
        out
    }

    /// Hands out its bytes `step` at a time.
    struct Steps<'a>(&'a [u8], usize);

    impl io::Read for Steps<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let count = self.0.len().min(self.1).min(out.len());
            let (now, later) = self.0.split_at(count);
            out[..count].copy_from_slice(now);
            self.0 = later;
            Ok(count)
        }
    }

    /// Events read as the relay reads them: from the buffer while it holds whole lines, with
    /// a (possibly waiting) read only when it does not. Counts the reads that were needed.
    fn events_buffered_first(text: &[u8], step: usize, capacity: usize) -> (Vec<SseEvent>, usize) {
        let source = ReadBuffer::with_capacity(capacity, Steps(text, step));
        let mut reader = SseReader::new(source, 1 << 20);
        let (mut out, mut waits) = (Vec::new(), 0);
        loop {
            let next = match reader.next_buffered_event() {
                Some(next) => next,
                None => {
                    waits += 1;
                    reader.next_event()
                }
            };
            match next.expect("valid stream") {
                Some(event) => out.push(event),
                None => return (out, waits),
            }
        }
    }

    #[test]
    fn buffered_events_come_out_as_a_plain_read_gives_them() {
        let text: &[u8] =
            b"event: a\ndata: {\"x\":1}\n\n: keep-alive\n\nevent: b\r\ndata: 1\r\ndata: 2\r\n\r\n\
              data: lone\rdata: cr\r\revent: c\ndata: {}\n\nevent: only-a-name\n\ndata: tail";
        let expected = events(text);
        assert_eq!(expected.len(), 6, "{expected:?}");
        for (step, capacity) in [(1, 1), (3, 7), (5, 4), (64, 16), (4096, 8192)] {
            let (got, waits) = events_buffered_first(text, step, capacity);
            assert_eq!(got, expected, "step {step}, capacity {capacity}");
            assert!(waits >= 1, "the first event needs a read");
        }
    }

    #[test]
    fn events_already_read_need_no_wait_and_a_drained_buffer_does() {
        let text = b"data: 1\n\ndata: 2\n\ndata: 3\n\n";
        let source = ReadBuffer::with_capacity(4096, Steps(text, 4096));
        let mut reader = SseReader::new(source, 1 << 20);
        assert!(reader.next_buffered_event().is_none(), "nothing read yet");
        let first = reader.next_event().expect("read").expect("event");
        assert_eq!(first.data, "1");
        for data in ["2", "3"] {
            let event = reader
                .next_buffered_event()
                .expect("buffered")
                .expect("valid");
            assert_eq!(event.expect("event").data, data);
        }
        assert!(
            reader.next_buffered_event().is_none(),
            "drained: EOF is not known yet"
        );
        assert!(reader.next_event().expect("read").is_none());
        assert!(matches!(reader.next_buffered_event(), Some(Ok(None))));
    }

    #[test]
    fn a_line_cut_by_the_read_waits_for_the_rest() {
        let text = b"data: 1\n\ndata: part";
        let source = ReadBuffer::with_capacity(4096, Steps(text, 4096));
        let mut reader = SseReader::new(source, 1 << 20);
        assert_eq!(reader.next_event().expect("read").expect("event").data, "1");
        assert!(reader.next_buffered_event().is_none());
        assert_eq!(
            reader.next_event().expect("read").expect("event").data,
            "part"
        );
    }

    #[test]
    fn skipped_events_keep_their_name_and_lose_only_their_data() {
        let text = b"event: delta\ndata: {\"a\":1}\ndata: \xff\n\n\
                     event: done\ndata: {\"b\":2}\n\n\
                     data: {\"c\":3}\nevent: delta\n\n\
                     event: delta\ndatum: x\n\n";
        let mut reader = SseReader::new(&text[..], 1 << 20);
        reader.skip_data_of(|name| name == "delta");
        let mut got = Vec::new();
        while let Some(event) = reader.next_event().expect("valid stream") {
            got.push((event.event, event.data));
        }
        let named = |name: &str, data: &str| (Some(name.to_owned()), data.to_owned());
        assert_eq!(
            got,
            vec![
                named("delta", ""),
                named("done", "{\"b\":2}"),
                // Data before the name is kept: the parser could not know it yet.
                named("delta", "{\"c\":3}"),
                // No data line at all: the type-only event, as without skipping.
                named("delta", "{\"type\":\"delta\"}"),
            ]
        );
    }

    #[test]
    fn skipped_data_still_counts_against_the_size_limit() {
        let mut text = b"event: delta\ndata: ".to_vec();
        text.extend(std::iter::repeat_n(b'x', 64));
        text.extend_from_slice(b"\n\n");
        let mut reader = SseReader::new(&text[..], 32);
        reader.skip_data_of(|_| true);
        assert!(matches!(
            reader.next_event(),
            Err(SseError::EventTooLarge { limit: 32 })
        ));
    }

    #[test]
    fn parses_codex_frames() {
        let parsed = events(
            b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n\
              event: response.completed\r\ndata: {\"type\":\"response.completed\"}\r\n\r\n",
        );
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].event.as_deref(), Some("response.created"));
        assert_eq!(parsed[1].data, "{\"type\":\"response.completed\"}");
    }

    #[test]
    fn joins_data_lines_and_ignores_comments_and_unknown_fields() {
        let parsed = events(b": keep-alive\nid: 7\ndata: a\ndata:b\n\n");
        assert_eq!(
            parsed,
            vec![SseEvent {
                event: None,
                data: "a\nb".into()
            }]
        );
    }

    #[test]
    fn recycled_events_lend_their_buffers_and_nothing_else() {
        let long = "x".repeat(1000);
        let text = format!(
            "event: response.created\ndata: \"{long}\"\n\n\
             data: {{\"b\":2}}\n\n\
             event: x\ndata: 3\n\n\
             event: response.completed\ndata: {{}}\n\n"
        )
        .into_bytes();
        let mut reader = SseReader::new(&text[..], 1 << 20);
        let mut recycled = Vec::new();
        while let Some(event) = reader.next_event().expect("valid stream") {
            if !recycled.is_empty() {
                // The first event's large buffer holds every later, short one.
                assert!(event.data.capacity() >= 1000, "{}", event.data.capacity());
            }
            recycled.push(event.clone());
            reader.recycle(event);
        }
        // The same events as without recycling: no name or data carried over.
        assert_eq!(recycled, events(&text));
        assert_eq!(recycled.len(), 4);
        assert_eq!(recycled[1].event, None);
        assert_eq!(recycled[3].data, "{}");
    }

    #[test]
    fn a_poisoned_event_keeps_the_lent_buffer_and_is_dropped() {
        let mut parser = SseParser::new(1 << 20);
        parser.recycle(SseEvent {
            event: Some("spare".into()),
            data: String::with_capacity(4096),
        });
        assert_eq!(parser.push_line(b"data: \xff").ok(), Some(None));
        assert_eq!(parser.push_line(b"").ok(), Some(None));
        assert_eq!(parser.push_line(b"data: ok").ok(), Some(None));
        let event = parser.push_line(b"").ok().flatten().expect("an event");
        assert_eq!((event.event, event.data.as_str()), (None, "ok"));
        assert!(event.data.capacity() >= 4096);
    }

    #[test]
    fn type_only_event_becomes_a_type_object() {
        let parsed = events(b"event: response.in_progress\n\n");
        assert_eq!(parsed[0].data, "{\"type\":\"response.in_progress\"}");
    }

    #[test]
    fn last_event_without_blank_line_is_kept() {
        let parsed = events(b"data: {\"x\":1}");
        assert_eq!(parsed[0].data, "{\"x\":1}");
    }

    #[test]
    fn invalid_utf8_drops_only_that_event() {
        let parsed = events(b"data: \xff\xfe\n\ndata: ok\n\n");
        assert_eq!(
            parsed,
            vec![SseEvent {
                event: None,
                data: "ok".into()
            }]
        );
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut big = b"data: ".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        big.extend_from_slice(b"\n\n");
        let mut reader = SseReader::new(&big[..], 1024);
        assert!(matches!(
            reader.next_event(),
            Err(SseError::EventTooLarge { limit: 1024 })
        ));
        let mut many = Vec::new();
        for _ in 0..100 {
            many.extend_from_slice(b"data: 0123456789\n");
        }
        let mut reader = SseReader::new(&many[..], 1024);
        assert!(matches!(
            reader.next_event(),
            Err(SseError::EventTooLarge { .. })
        ));
    }

    #[test]
    fn lines_split_across_reads_and_the_limit_hold_with_a_tiny_buffer() {
        let text = b"event: a\r\ndata: {\"x\":1}\n\ndata: two\rdata: three\n\n";
        let mut reader = SseReader::new(std::io::BufReader::with_capacity(3, &text[..]), 64);
        let mut parsed = Vec::new();
        while let Some(event) = reader.next_event().expect("valid") {
            parsed.push(event);
        }
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].event.as_deref(), Some("a"));
        assert_eq!(parsed[1].data, "two\nthree");
        let long = [b"data: ".as_slice(), &[b'x'; 100], b"\n\n"].concat();
        let mut reader = SseReader::new(std::io::BufReader::with_capacity(7, &long[..]), 64);
        assert!(matches!(
            reader.next_event(),
            Err(SseError::EventTooLarge { limit: 64 })
        ));
    }

    #[test]
    fn a_lone_cr_ends_a_line() {
        let parsed = events(b"data: one\r\rdata: two\r\r");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].data, "two");
    }

    #[test]
    fn names_with_line_breaks_are_dropped_and_data_breaks_kept() {
        let frame = encode_frame(Some("x\n\ndata: injected"), "a\rb");
        assert_eq!(frame, b"data: a\ndata: b\n\n".to_vec());
        let parsed = events(&encode_frame(None, "\r"));
        assert_eq!(parsed[0].data, "\n");
    }

    #[test]
    fn encodes_frames_that_parse_back() {
        let frame = encode_frame(Some("response.created"), "{\"a\":\"b\\nc\"}");
        assert_eq!(
            frame,
            b"event: response.created\ndata: {\"a\":\"b\\nc\"}\n\n".to_vec()
        );
        let parsed = events(&encode_frame(None, "one\ntwo"));
        assert_eq!(parsed[0].data, "one\ntwo");
    }
}
