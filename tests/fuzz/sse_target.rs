//! Fuzz target `sse`: the SSE reader and parser on arbitrary bytes in arbitrary chunkings. The
//! reader must not depend on how the bytes arrive, must agree with the parser fed line by line,
//! must keep events within the size limit, and what it parses must survive `encode_frame`.

use std::io::{self, BufRead, BufReader, Read};

use codex_sub_proxy::sse::{SseError, SseEvent, SseParser, SseReader, encode_frame};
use serde_json::json;

use super::corpus;
use super::engine::Rng;
use super::mutate::{mutate_bytes, shrink_bytes};
use super::records::put_bytes;

/// Bytes, the event size limit, and how the bytes arrive.
#[derive(Debug, Clone)]
pub struct SseCase {
    pub bytes: Vec<u8>,
    pub limit: usize,
    /// Sizes of successive reads, cycled; 0 is a read interrupted (`ErrorKind::Interrupted`).
    pub chunks: Vec<usize>,
    /// The `BufReader` capacity.
    pub capacity: usize,
}

/// A reader that hands out `bytes` in the sizes `chunks` says.
struct ChunkedReader<'a> {
    bytes: &'a [u8],
    position: usize,
    chunks: &'a [usize],
    turn: usize,
    /// An interrupted read is followed by a real one, so the reader always progresses.
    interrupted: bool,
}

impl Read for ChunkedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.bytes.len() || buf.is_empty() {
            return Ok(0);
        }
        let size = self
            .chunks
            .get(self.turn % self.chunks.len().max(1))
            .copied()
            .unwrap_or(usize::MAX);
        self.turn += 1;
        if size == 0 && !self.interrupted {
            self.interrupted = true;
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        self.interrupted = false;
        let size = size
            .max(1)
            .min(buf.len())
            .min(self.bytes.len() - self.position);
        buf[..size].copy_from_slice(&self.bytes[self.position..self.position + size]);
        self.position += size;
        Ok(size)
    }
}

/// Every event a reader yields, and how it stopped (`None`: clean end).
pub type ReadOutcome = (Vec<SseEvent>, Option<String>);

pub fn read_all<R: BufRead>(mut reader: SseReader<R>) -> ReadOutcome {
    let mut events = Vec::new();
    loop {
        match reader.next_event() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(error) => return (events, Some(describe(&error))),
        }
    }
}

fn describe(error: &SseError) -> String {
    match error {
        SseError::EventTooLarge { limit } => format!("too large ({limit})"),
        SseError::Io(io) => format!("io {:?}", io.kind()),
    }
}

/// The parser alone, fed line by line.
fn parse_lines(bytes: &[u8], limit: usize) -> ReadOutcome {
    let mut parser = SseParser::new(limit);
    let mut events = Vec::new();
    // SSE ends a line at CRLF, LF or a lone CR.
    for physical in bytes.split_inclusive(|b| *b == b'\n') {
        // The reader holds at most `limit + 2` bytes of one physical line (its memory bound),
        // whatever lone CRs split it into.
        let bound = limit.saturating_add(2);
        if physical.len() > bound || (!physical.ends_with(b"\n") && physical.len() >= bound) {
            let error = codex_sub_proxy::sse::SseError::EventTooLarge { limit };
            return (events, Some(describe(&error)));
        }
        let physical = physical.strip_suffix(b"\n").unwrap_or(physical);
        let physical = physical.strip_suffix(b"\r").unwrap_or(physical);
        for line in physical.split(|b| *b == b'\r') {
            match parser.push_line(line) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(error) => return (events, Some(describe(&error))),
            }
        }
    }
    events.extend(parser.finish());
    (events, None)
}

pub fn check_sse(case: &SseCase) -> Result<(), String> {
    let whole = read_all(SseReader::new(&case.bytes[..], case.limit));
    let chunked = read_all(SseReader::new(
        BufReader::with_capacity(
            case.capacity.max(1),
            ChunkedReader {
                bytes: &case.bytes,
                position: 0,
                chunks: &case.chunks,
                turn: 0,
                interrupted: false,
            },
        ),
        case.limit,
    ));
    if chunked != whole {
        return Err(format!(
            "sse-chunking: chunked reads gave {chunked:?}, one read gave {whole:?}"
        ));
    }
    // A line longer than the limit fails in the reader before the parser sees it; otherwise
    // the reader must be the parser plus line splitting.
    let lines = parse_lines(&case.bytes, case.limit);
    let comparable = match (&whole.1, &lines.1) {
        (Some(_), Some(_)) => lines.0.starts_with(&whole.0) || whole.0.starts_with(&lines.0),
        _ => lines == whole,
    };
    if !comparable {
        return Err(format!(
            "sse-reader-vs-parser: reader gave {whole:?}, parser gave {lines:?}"
        ));
    }
    for event in &whole.0 {
        let name_len = event.event.as_ref().map_or(0, String::len);
        // An `event:` line alone becomes `{"type": name}`: larger than the line (escapes).
        let type_only = event
            .event
            .as_ref()
            .map(|name| json!({ "type": name }).to_string());
        let synthesised = type_only.as_ref() == Some(&event.data);
        if name_len > case.limit || (event.data.len() > case.limit && !synthesised) {
            return Err(format!(
                "sse-event-size: an event of {} + {} bytes passed a limit of {}",
                name_len,
                event.data.len(),
                case.limit
            ));
        }
    }
    let mut encoded = Vec::new();
    for event in &whole.0 {
        encoded.extend(encode_frame(event.event.as_deref(), &event.data));
    }
    let again = read_all(SseReader::new(&encoded[..], encoded.len() + 16));
    if again.1.is_some() || again.0 != whole.0 {
        return Err(format!(
            "sse-reencode: {:?} re-encoded as {:?} parses back as {again:?}",
            whole.0,
            String::from_utf8_lossy(&encoded)
        ));
    }
    Ok(())
}

const SSE_TOKENS: &[&[u8]] = &[
    b"data: ",
    b"data:",
    b"event: ",
    b"event:",
    b": keep-alive\n",
    b"\n\n",
    b"\r\n",
    b"\r",
    b"\r\r\n",
    b"id: 1\n",
    b"retry: 5\n",
    b"event: response.completed\n",
    b"data: {\"type\":\"response.completed\"}\n\n",
    b"\xff\xfe",
    b"\xe2\x80\xa8",
    b"\xef\xbb\xbf",
];

const LIMITS: &[usize] = &[1, 2, 7, 16, 64, 100, 1024, 65_536, 1 << 20];

pub fn mutate_sse(rng: &mut Rng, case: &SseCase, corpus: &[SseCase]) -> SseCase {
    let mut out = case.clone();
    match rng.below(10) {
        0 => {
            out.limit = match rng.below(3) {
                0 => out.bytes.len().saturating_sub(rng.below(8)).max(1),
                _ => *rng.pick(LIMITS).unwrap_or(&1024),
            };
        }
        1 => {
            let count = rng.range(1, 8);
            out.chunks = (0..count)
                .map(|_| match rng.below(4) {
                    0 => rng.below(3),
                    1 => rng.range(1, 4096),
                    _ => rng.range(1, 17),
                })
                .collect();
            out.capacity = if rng.one_in(2) {
                rng.range(1, 64)
            } else {
                8192
            };
        }
        _ => {
            let donors: Vec<&[u8]> = corpus.iter().map(|c| &c.bytes[..]).collect();
            out.bytes = mutate_bytes(rng, &out.bytes, &donors, SSE_TOKENS);
        }
    }
    out
}

pub fn shrink_sse(case: &SseCase) -> Box<dyn Iterator<Item = SseCase>> {
    let simpler = SseCase {
        chunks: vec![usize::MAX],
        capacity: 8192,
        ..case.clone()
    };
    let base = case.clone();
    let plain = (case.chunks != simpler.chunks || case.capacity != 8192).then_some(simpler);
    let smaller = shrink_bytes(&case.bytes).map(move |bytes| SseCase {
        bytes,
        ..base.clone()
    });
    Box::new(plain.into_iter().chain(smaller))
}

pub fn render_sse(case: &SseCase) -> String {
    let mut record = json!({"target": "sse", "limit": case.limit, "chunks": case.chunks,
                            "capacity": case.capacity});
    put_bytes(&mut record, &case.bytes);
    record.to_string()
}

pub fn sse_corpus() -> Vec<SseCase> {
    corpus::sse_texts()
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| SseCase {
            limit: if i % 3 == 2 { 256 } else { 1 << 20 },
            chunks: vec![1 + i % 5, 7, 0, 64],
            capacity: if i % 2 == 0 { 8192 } else { 3 },
            bytes,
        })
        .collect()
}
