//! The load generator: std threads, one keep-alive TCP connection each, a hand-written
//! HTTP/1.1 client (chunked and `Content-Length` bodies, see `http1.rs`).
//!
//! Four kinds of load, each bounded in time and in count:
//! - [`run_streams`]: concurrent streaming requests; for every text delta the receive time
//!   minus the send time the fake stamped into the delta's text, in µs.
//! - [`run_throughput`]: closed-loop requests for a fixed duration; per-request latency.
//! - [`Sequential`]: requests one at a time, round-robin over several kinds, for a fixed
//!   count (stability, CPU per request, cost per event).
//! - [`HeldStreams`]: many slow streams held open at once, to measure the proxy's memory.
//!
//! The same code talks to the fake directly, through nginx and through the proxy's two
//! endpoints, so the differences are the relays'; what differs per way lives on
//! [`Via`](crate::via::Via).

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fast_fake::{Scenario, now_micros};
use crate::http1::{self, BodyReader, Head};
use crate::via::{Request, StreamEnd, Target, find};

/// Socket read and write timeout of every load connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A response body larger than this is an error (nothing here sends that much).
const MAX_BODY_BYTES: u64 = 64 << 20;

/// A worker that fails this many requests in a row gives up.
const MAX_CONSECUTIVE_FAILURES: u32 = 50;

/// Requests one throughput worker sends at most, whatever the duration.
const MAX_REQUESTS_PER_WORKER: u64 = 1_000_000;

/// Stack of a load thread (they only hold a few small buffers).
const THREAD_STACK: usize = 256 << 10;

/// One keep-alive client connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    request: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(16 << 10, stream),
            request: Vec::with_capacity(1024),
        })
    }

    /// Sends a POST in one write and reads the response head.
    fn post(&mut self, target: &Target, body: &[u8]) -> io::Result<Head> {
        self.request.clear();
        write!(
            self.request,
            "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            target.via.path(),
            target.addr,
            target.via.bearer(),
            target.via.extra_headers(),
            body.len()
        )?;
        self.request.extend_from_slice(body);
        self.writer.write_all(&self.request)?;
        http1::read_head(&mut self.reader)?.ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }
}

/// Calls `on_event(frame, received_µs)` for every complete SSE frame of `body`, with the
/// time the read that completed the frame returned.
fn for_each_event(body: &mut impl Read, mut on_event: impl FnMut(&[u8], u64)) -> io::Result<()> {
    let mut buffer = vec![0u8; 16 << 10];
    let mut pending: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut total = 0u64;
    loop {
        let read = body.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        let received = now_micros();
        total += read as u64;
        if total > MAX_BODY_BYTES {
            return Err(io::Error::other("stream body too large"));
        }
        // A frame end may straddle the previous read.
        let mut at = pending.len().saturating_sub(1);
        pending.extend_from_slice(&buffer[..read]);
        let mut start = 0;
        while let Some(offset) = find(&pending[at..], b"\n\n") {
            let end = at + offset + 2;
            on_event(&pending[start..end], received);
            start = end;
            at = end;
        }
        pending.drain(..start);
    }
}

/// The send stamp in a delta frame: the digits after `mark` (see
/// [`Via::stamp_mark`](crate::via::Via::stamp_mark)).
fn delta_stamp(frame: &[u8], mark: &[u8]) -> Option<u64> {
    let at = find(frame, mark)? + mark.len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// What a set of streams measured.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Receive time minus send stamp of every delta received, µs.
    pub delays_us: Vec<i64>,
    /// Streams that ended as they should (see [`StreamEnd`]) with every delta.
    pub complete: usize,
    /// Streams that failed or came back short.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl StreamStats {
    /// Adds another run's figures to these.
    pub fn merge(&mut self, other: StreamStats) {
        self.delays_us.extend(other.delays_us);
        self.complete += other.complete;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, error: impl ToString) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

/// Whether a stream thread keeps its connection for its next stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One keep-alive connection per thread, reused while the server allows.
    Reused,
    /// A new connection for every stream, closed after it.
    PerStream,
}

/// `concurrency` threads, each streaming `rounds` responses one after another on the
/// connections `connections` says.
pub fn run_streams(
    target: Target,
    scenario: Scenario,
    concurrency: usize,
    rounds: usize,
    connections: Connections,
) -> io::Result<StreamStats> {
    let body = Request::new(target, scenario, true).body;
    let start = Arc::new(Barrier::new(concurrency));
    let mut workers = Vec::with_capacity(concurrency);
    for index in 0..concurrency {
        let body = body.clone();
        let start = start.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("stream-{index}"))
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    start.wait();
                    stream_worker(target, scenario, &body, rounds, connections)
                })?,
        );
    }
    let mut stats = StreamStats::default();
    for worker in workers {
        match worker.join() {
            Ok(worker_stats) => stats.merge(worker_stats),
            Err(_) => stats.fail("a stream thread panicked"),
        }
    }
    Ok(stats)
}

fn stream_worker(
    target: Target,
    scenario: Scenario,
    body: &[u8],
    rounds: usize,
    connections: Connections,
) -> StreamStats {
    let mut stats = StreamStats::default();
    let mut conn = None;
    for _ in 0..rounds {
        let outcome = match conn.take() {
            Some(open) => Ok(open),
            None => Conn::open(target.addr),
        }
        .and_then(|mut open| {
            stream_once(&mut open, target, scenario, body, &mut stats.delays_us)
                .map(|(complete, reusable)| (complete, reusable.then_some(open)))
        });
        match outcome {
            Ok((true, reusable)) => {
                stats.complete += 1;
                conn = reusable.filter(|_| connections == Connections::Reused);
            }
            Ok((false, _)) => {
                stats.fail("a stream ended without every delta or without completion")
            }
            Err(error) => stats.fail(error),
        }
    }
    stats
}

/// One streaming request; pushes the delays. Returns (complete, connection reusable).
fn stream_once(
    conn: &mut Conn,
    target: Target,
    scenario: Scenario,
    body: &[u8],
    delays: &mut Vec<i64>,
) -> io::Result<(bool, bool)> {
    let head = conn.post(&target, body)?;
    let mut reader = BodyReader::new(&mut conn.reader, head.framing(false));
    if head.status() != 200 {
        reader.drain()?;
        return Err(io::Error::other(format!("status {}", head.status())));
    }
    let mark = target.via.stamp_mark();
    let mut deltas = 0;
    let mut end = StreamEnd::default();
    for_each_event(&mut reader, |frame, received| {
        if let Some(sent) = delta_stamp(frame, mark) {
            deltas += 1;
            delays.push(received as i64 - sent as i64);
        } else {
            target.via.note_frame(frame, &mut end);
        }
    })?;
    let reusable = reader.is_done() && head.keeps_alive();
    Ok((end.completed && deltas == scenario.deltas, reusable))
}

/// What a closed-loop throughput run measured.
#[derive(Debug, Default)]
pub struct ThroughputStats {
    /// Requests answered correctly.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Latency of each correct request, µs.
    pub latencies_us: Vec<i64>,
    /// From the common start to the last worker's end.
    pub elapsed: Duration,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

/// `concurrency` workers each send `request` back to back, on one keep-alive connection,
/// until `duration` has passed (at least one request each). Stream answers are read to the
/// end and checked for their proper end; aggregated answers are one JSON object checked for
/// a completed status (`/v1/responses`) or a `stop` finish (`/v1/chat/completions`).
pub fn run_throughput(
    request: &Request,
    concurrency: usize,
    duration: Duration,
) -> io::Result<ThroughputStats> {
    let start = Arc::new(Barrier::new(concurrency + 1));
    let mut workers = Vec::with_capacity(concurrency);
    for index in 0..concurrency {
        let request = request.clone();
        let start = start.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("load-{index}"))
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    start.wait();
                    Sequential::new(vec![request]).run(MAX_REQUESTS_PER_WORKER, duration)
                })?,
        );
    }
    let began = Instant::now();
    start.wait();
    let mut stats = ThroughputStats::default();
    for worker in workers {
        match worker.join() {
            Ok(worker_stats) => {
                stats.ok += worker_stats.ok;
                stats.failed += worker_stats.failed;
                stats.latencies_us.extend(worker_stats.latencies_us);
                if stats.first_error.is_none() {
                    stats.first_error = worker_stats.first_error;
                }
            }
            Err(_) => {
                stats.failed += 1;
                stats.first_error = Some("a load thread panicked".into());
            }
        }
    }
    stats.elapsed = began.elapsed();
    Ok(stats)
}

/// Requests sent one at a time on this thread, round-robin over several kinds, each kind on
/// its own keep-alive connection, kept from one [`Sequential::run`] to the next.
pub struct Sequential {
    requests: Vec<Request>,
    conns: Vec<Option<Conn>>,
    next: usize,
    answer: Vec<u8>,
}

impl Sequential {
    /// Nothing is sent until [`Sequential::run`].
    pub fn new(requests: Vec<Request>) -> Sequential {
        let conns = requests.iter().map(|_| None).collect();
        Sequential {
            requests,
            conns,
            next: 0,
            answer: Vec::with_capacity(64 << 10),
        }
    }

    /// Sends `count` requests, or fewer when `limit` has passed (at least one, so a zero
    /// limit sends exactly one) or too many failed in a row.
    pub fn run(&mut self, count: u64, limit: Duration) -> ThroughputStats {
        let began = Instant::now();
        let mut stats = ThroughputStats::default();
        let mut consecutive_failures = 0;
        for sent_before in 0..count {
            let over = sent_before > 0 && began.elapsed() >= limit;
            if over || consecutive_failures >= MAX_CONSECUTIVE_FAILURES || self.requests.is_empty()
            {
                break;
            }
            let index = self.next % self.requests.len();
            self.next = self.next.wrapping_add(1);
            let request = &self.requests[index];
            let sent = Instant::now();
            let outcome = match self.conns[index].take() {
                Some(open) => Ok(open),
                None => Conn::open(request.target.addr),
            }
            .and_then(|mut open| {
                let reusable = request_once(&mut open, request, &mut self.answer)?;
                Ok(reusable.then_some(open))
            });
            match outcome {
                Ok(reusable) => {
                    let micros = i64::try_from(sent.elapsed().as_micros()).unwrap_or(i64::MAX);
                    stats.latencies_us.push(micros);
                    stats.ok += 1;
                    consecutive_failures = 0;
                    self.conns[index] = reusable;
                }
                Err(error) => {
                    stats.failed += 1;
                    consecutive_failures += 1;
                    if stats.first_error.is_none() {
                        stats.first_error = Some(error.to_string());
                    }
                }
            }
        }
        stats.elapsed = began.elapsed();
        stats
    }
}

/// One request read to the end and checked. Returns whether the connection is reusable.
fn request_once(conn: &mut Conn, request: &Request, answer: &mut Vec<u8>) -> io::Result<bool> {
    let head = conn.post(&request.target, &request.body)?;
    let mut reader = BodyReader::new(&mut conn.reader, head.framing(false));
    answer.clear();
    (&mut reader).take(MAX_BODY_BYTES).read_to_end(answer)?;
    if head.status() != 200 {
        return Err(io::Error::other(format!(
            "status {}: {}",
            head.status(),
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        )));
    }
    if !request
        .target
        .via
        .is_complete_answer(answer, request.stream)
    {
        return Err(io::Error::other("incomplete answer"));
    }
    Ok(reader.is_done() && head.keeps_alive())
}

/// Slow streams held open together, each on its own thread and connection.
pub struct HeldStreams {
    first_events: Receiver<()>,
    workers: Vec<JoinHandle<io::Result<bool>>>,
}

impl HeldStreams {
    /// Opens `count` streams of `scenario` through `target`.
    pub fn open(target: Target, scenario: Scenario, count: usize) -> io::Result<HeldStreams> {
        let body = Request::new(target, scenario, true).body;
        let (signal, first_events) = mpsc::channel();
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let body = body.clone();
            let signal = signal.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("held-{index}"))
                    .stack_size(THREAD_STACK)
                    .spawn(move || {
                        let mut conn = Conn::open(target.addr)?;
                        let head = conn.post(&target, &body)?;
                        if head.status() != 200 {
                            return Err(io::Error::other(format!("status {}", head.status())));
                        }
                        let mut reader = BodyReader::new(&mut conn.reader, head.framing(false));
                        let mut first = Some(signal);
                        let mut end = StreamEnd::default();
                        for_each_event(&mut reader, |frame, _| {
                            if let Some(signal) = first.take() {
                                let _ = signal.send(());
                            }
                            target.via.note_frame(frame, &mut end);
                        })?;
                        Ok(end.completed)
                    })?,
            );
        }
        Ok(HeldStreams {
            first_events,
            workers,
        })
    }

    /// Waits until every stream has delivered its first event, or `limit` has passed.
    /// Returns how many did.
    pub fn wait_first_events(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        while seen < self.workers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.first_events.recv_timeout(left) {
                Ok(()) => seen += 1,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        seen
    }

    /// Waits for every stream to end (each is bounded by the socket timeout). Returns
    /// (completed, failed) and the first failure.
    pub fn finish(self) -> (usize, usize, Option<String>) {
        let (mut completed, mut failed, mut first_error) = (0, 0, None);
        for worker in self.workers {
            match worker.join() {
                Ok(Ok(true)) => completed += 1,
                Ok(Ok(false)) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| "stream ended without completion".into());
                }
                Ok(Err(error)) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| error.to_string());
                }
                Err(_) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| "a stream thread panicked".into());
                }
            }
        }
        (completed, failed, first_error)
    }
}
