//! Minimal HTTP/1.1 message framing shared by the fast fake backend and the load generator:
//! reading a message head, and a body reader that understands `Content-Length`, chunked
//! transfer coding and read-until-close bodies.
//!
//! Deliberately small and allocation-light: both sides of the benchmark must cost far less
//! than the proxy they measure. The chunked reader never reads past the end of a chunk's
//! data before returning it, so an event is handed over as soon as its chunk has arrived
//! (the trailing CRLF is consumed on the next read, never waited for).

use std::io::{self, BufRead, Read};

/// Largest message head accepted (status or request line plus headers).
const MAX_HEAD_BYTES: usize = 64 << 10;

/// A request or response head.
#[derive(Debug, Default)]
pub struct Head {
    /// `POST /path HTTP/1.1` or `HTTP/1.1 200 OK`, without the line end.
    pub start_line: String,
    /// Header names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
}

/// How the body following a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the peer closes (responses only).
    UntilClose,
}

impl Head {
    /// A header's value (first occurrence, name compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The status code of a response head, 0 when unreadable.
    pub fn status(&self) -> u16 {
        self.start_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The body framing; a request without length or chunking has no body.
    pub fn framing(&self, is_request: bool) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return Framing::Chunked;
        }
        match self.header("content-length").map(str::parse::<u64>) {
            Some(Ok(length)) => Framing::Length(length),
            _ if is_request => Framing::Length(0),
            _ => Framing::UntilClose,
        }
    }

    /// Whether the connection may carry another message after this one.
    pub fn keeps_alive(&self) -> bool {
        let close = self
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        !close && self.start_line.contains("HTTP/1.1")
    }
}

/// Reads a head. `Ok(None)` when the peer closed cleanly before sending anything.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut head = Head::default();
    let mut line = Vec::with_capacity(128);
    let mut total = 0;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return if total == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        total += read;
        if total > MAX_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message head too large",
            ));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "head is not UTF-8"))?
            .trim_end_matches(['\r', '\n']);
        if head.start_line.is_empty() {
            if text.is_empty() {
                // Tolerate a stray CRLF between keep-alive messages.
                continue;
            }
            head.start_line = text.to_owned();
        } else if text.is_empty() {
            return Ok(Some(head));
        } else if let Some((name, value)) = text.split_once(':') {
            head.headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Length(u64),
    /// Before a chunk-size line; `true` when the previous chunk's CRLF is still unread.
    ChunkStart(bool),
    Chunk(u64),
    UntilClose,
    Done,
}

/// The body of one message, read through the connection's buffered reader.
pub struct BodyReader<'a, R: BufRead> {
    inner: &'a mut R,
    state: State,
}

impl<'a, R: BufRead> BodyReader<'a, R> {
    /// A reader for a body with this framing.
    pub fn new(inner: &'a mut R, framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkStart(false),
            Framing::UntilClose => State::UntilClose,
        };
        BodyReader { inner, state }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Reads and discards the rest of the body (so the connection can be reused).
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    fn read_chunk_size(&mut self, crlf_pending: bool) -> io::Result<u64> {
        let mut line = Vec::with_capacity(16);
        if crlf_pending {
            self.inner.read_until(b'\n', &mut line)?;
            if line.as_slice() != b"\r\n" && line.as_slice() != b"\n" {
                return Err(invalid("missing CRLF after chunk data"));
            }
            line.clear();
        }
        self.inner.read_until(b'\n', &mut line)?;
        let text = std::str::from_utf8(&line).map_err(|_| invalid("chunk size not UTF-8"))?;
        let digits = text.split(';').next().unwrap_or("").trim();
        u64::from_str_radix(digits, 16).map_err(|_| invalid("bad chunk size"))
    }

    fn skip_trailers(&mut self) -> io::Result<()> {
        let mut line = Vec::with_capacity(8);
        for _ in 0..64 {
            line.clear();
            if self.inner.read_until(b'\n', &mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                return Ok(());
            }
        }
        Err(invalid("too many trailer lines"))
    }
}

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::UntilClose => {
                    let read = self.inner.read(buf)?;
                    if read == 0 {
                        self.state = State::Done;
                    }
                    return Ok(read);
                }
                State::Length(remaining) | State::Chunk(remaining) => {
                    let want = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let read = self.inner.read(&mut buf[..want])?;
                    if read == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    let left = remaining - read as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkStart(true),
                        _ => State::Chunk(left),
                    };
                    return Ok(read);
                }
                State::ChunkStart(crlf_pending) => {
                    let size = self.read_chunk_size(crlf_pending)?;
                    if size == 0 {
                        self.skip_trailers()?;
                        self.state = State::Done;
                    } else {
                        self.state = State::Chunk(size);
                    }
                }
            }
        }
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Frames `payload` as one chunk of a chunked body, appended to `out`.
pub fn push_chunk(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
