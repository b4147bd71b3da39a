//! An upstream that misbehaves at the socket level, for fault tests: a `std::net` listener on
//! `127.0.0.1:0` that answers each accepted connection with the next queued [`Fault`] (or the
//! default one), byte for byte, with no HTTP library in the way.
//!
//! Every connection is handled on its own thread. A fault that hangs waits on a stop channel,
//! so dropping the [`RawUpstream`] ends every hang at once; the drop then joins all threads.
//! Normal answers carry `connection: close`, so the proxy never reuses a connection and each
//! request meets exactly one fault.
//!
//! The message texts of the streams it builds are registered in `secrets.rs` as completions.

#![expect(clippy::expect_used, reason = "test support fails loudly")]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};

use crate::secrets::{self, SecretKind};

/// The base path the raw upstream pretends to serve (any path is accepted).
pub const BASE_PATH: &str = "/backend-api/codex";

/// Longest a hanging fault holds its connection when the test forgets to drop the upstream.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// What the upstream does with one connection.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Accepts, then closes without reading or writing anything.
    CloseAtOnce,
    /// Reads the request, then sends nothing while the connection stays open.
    Silent,
    /// Reads the request, writes these bytes, then closes (a clean FIN).
    SendThenClose(Vec<u8>),
    /// Reads the request, writes these bytes, then stays silent with the connection open.
    SendThenHang(Vec<u8>),
    /// Reads whatever the client sends first (a TLS ClientHello), answers these bytes and
    /// closes its side, then waits for the client to close.
    Greet(Vec<u8>),
    /// Reads the request, answers an SSE head (unchunked, `connection: close`) and one `data:`
    /// line of `bytes` bytes without a newline, written in small pieces; stops at the first
    /// failed write (the reader gave up).
    HugeEvent {
        /// Length of the data line.
        bytes: usize,
    },
    /// A well-formed completed stream whose message says `text`.
    Normal(String),
}

/// A running raw upstream; it stops when dropped.
pub struct RawUpstream {
    addr: SocketAddr,
    queue: Arc<Mutex<VecDeque<Fault>>>,
    connections: Arc<Mutex<usize>>,
    closed: Arc<Mutex<usize>>,
    stop: Option<Sender<()>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl RawUpstream {
    /// Starts on `127.0.0.1:0`; connections get `default` when nothing is queued.
    pub fn start(default: Fault) -> RawUpstream {
        RawUpstream::start_at("127.0.0.1:0".parse().expect("address"), default)
    }

    /// Starts on `addr` (to bring a backend back on a port a proxy already points at).
    pub fn start_at(addr: SocketAddr, default: Fault) -> RawUpstream {
        let listener = TcpListener::bind(addr).expect("bind raw upstream");
        let addr = listener.local_addr().expect("raw upstream address");
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let connections = Arc::new(Mutex::new(0));
        let closed = Arc::new(Mutex::new(0));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let accept_thread = thread::Builder::new()
            .name("raw-upstream-accept".into())
            .spawn({
                let queue = queue.clone();
                let counts = (connections.clone(), closed.clone());
                move || accept_loop(&listener, &queue, &counts, default, &stopped)
            })
            .expect("spawn raw upstream");
        RawUpstream {
            addr,
            queue,
            connections,
            closed,
            stop: Some(stop),
            accept_thread: Some(accept_thread),
        }
    }

    /// `http://127.0.0.1:PORT/backend-api/codex`.
    pub fn base_url(&self) -> String {
        format!("http://{}{BASE_PATH}", self.addr)
    }

    /// `https://127.0.0.1:PORT/backend-api/codex` (for a TLS client meeting a non-TLS server).
    pub fn https_base_url(&self) -> String {
        format!("https://{}{BASE_PATH}", self.addr)
    }

    /// Queues `fault` for the next accepted connection.
    pub fn push(&self, fault: Fault) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(fault);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections whose fault has finished and whose socket this side has closed.
    pub fn closed(&self) -> usize {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        drop(self.stop.take());
        // Wakes the blocking accept; the loop then sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepted and closed connections, counted.
type Counts = (Arc<Mutex<usize>>, Arc<Mutex<usize>>);

fn accept_loop(
    listener: &TcpListener,
    queue: &Mutex<VecDeque<Fault>>,
    (connections, closed): &Counts,
    default: Fault,
    stopped: &Receiver<()>,
) {
    let mut handlers = Vec::new();
    for stream in listener.incoming() {
        if stopped.try_recv() != Err(crossbeam_channel::TryRecvError::Empty) {
            break;
        }
        let Ok(stream) = stream else { continue };
        *connections.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let fault = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_else(|| default.clone());
        let stopped = stopped.clone();
        let closed = closed.clone();
        if let Ok(handler) = thread::Builder::new()
            .name("raw-upstream-conn".into())
            .spawn(move || {
                // A peer that went away mid-answer is part of what these faults provoke.
                // `serve` owns the socket: it is closed when it returns.
                let _ = serve(stream, fault, &stopped);
                *closed.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            })
        {
            handlers.push(handler);
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

fn serve(mut stream: TcpStream, fault: Fault, stopped: &Receiver<()>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    match fault {
        Fault::CloseAtOnce => Ok(()),
        Fault::Silent => {
            read_request(&mut stream)?;
            hang(stopped);
            Ok(())
        }
        Fault::SendThenClose(bytes) => {
            read_request(&mut stream)?;
            stream.write_all(&bytes)?;
            stream.flush()
        }
        Fault::SendThenHang(bytes) => {
            read_request(&mut stream)?;
            stream.write_all(&bytes)?;
            stream.flush()?;
            hang(stopped);
            Ok(())
        }
        Fault::Greet(bytes) => {
            let mut first = [0u8; 4096];
            let _ = stream.read(&mut first)?;
            stream.write_all(&bytes)?;
            stream.shutdown(Shutdown::Write)?;
            // Waits for the client's close so no unread byte turns our close into a reset.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            Ok(())
        }
        Fault::HugeEvent { bytes } => {
            read_request(&mut stream)?;
            stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                  event: response.output_text.delta\r\ndata: ",
            )?;
            let piece = vec![b'x'; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(piece.len());
                stream.write_all(&piece[..n])?;
                left -= n;
            }
            stream.write_all(b"\n\n")
        }
        Fault::Normal(text) => {
            read_request(&mut stream)?;
            let body = completed_stream(&text);
            stream.write_all(sse_head_with_length(body.len()).as_bytes())?;
            stream.write_all(body.as_bytes())?;
            stream.flush()
        }
    }
}

fn hang(stopped: &Receiver<()>) {
    // Returns when the upstream is dropped (the channel disconnects) or after the limit.
    let _ = stopped.recv_timeout(HANG_LIMIT);
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body (or
/// a chunked body up to its last chunk).
fn read_request(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&data, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &data[head_end..];
        let done = match length {
            Some(length) => body.len() >= length,
            None if chunked => find(body, b"0\r\n\r\n").is_some(),
            None => true,
        };
        if done {
            return Ok(data);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(data);
        }
        data.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `200` SSE head with `content-length`, no reuse.
pub fn sse_head_with_length(length: usize) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {length}\r\n\
         connection: close\r\n\r\n"
    )
}

/// The `200` SSE head of a chunked answer, no reuse.
pub const SSE_HEAD_CHUNKED: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                                    transfer-encoding: chunked\r\nconnection: close\r\n\r\n";

/// `data` as one HTTP chunk.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// One SSE frame `event: TYPE\ndata: JSON\n\n` (the type is read from `data`).
pub fn frame(data: &Value) -> String {
    let kind = data["type"].as_str().unwrap_or("message");
    format!("event: {kind}\ndata: {data}\n\n")
}

/// `response.created` and a first delta: the opening of a stream, with sequence numbers 0–1.
pub fn opening_events() -> String {
    let response = json!({"id": "resp_raw", "object": "response", "created_at": 1,
        "status": "in_progress", "model": "gpt-5.5", "output": []});
    frame(&json!({"type": "response.created", "sequence_number": 0, "response": response}))
        + &frame(
            &json!({"type": "response.output_text.delta", "sequence_number": 1,
            "item_id": "msg_raw", "output_index": 0, "content_index": 0, "delta": "par"}),
        )
}

/// The events after [`opening_events`] that finish a message saying `text`.
pub fn closing_events(text: &str) -> String {
    secrets::register(SecretKind::Completion, text);
    let item = json!({"id": "msg_raw", "type": "message", "status": "completed",
        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let response = json!({"id": "resp_raw", "object": "response", "created_at": 1,
        "status": "completed", "model": "gpt-5.5", "output": [],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}});
    frame(
        &json!({"type": "response.output_item.done", "sequence_number": 2,
        "output_index": 0, "item": item}),
    ) + &frame(&json!({"type": "response.completed", "sequence_number": 3, "response": response}))
}

/// A whole completed stream whose message says `text`.
pub fn completed_stream(text: &str) -> String {
    opening_events() + &closing_events(text)
}
