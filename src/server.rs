//! The server: a tiny_http listener, a bounded queue and a fixed worker pool.
//!
//! A request crosses threads once: tiny_http reads it on its connection's thread, which
//! reads the body too and queues the complete request (`Intake`, through the patched
//! tiny_http's request sink); a worker takes it from there. (A dispatcher thread between
//! tiny_http's own queue and this one was a second crossing, with a wake-up each.)
//!
//! Invariants enforced here:
//! - Concurrency is bounded by `WORKERS`, waiting by `QUEUE_DEPTH`; beyond both the proxy
//!   answers 503 with `Retry-After` at once and never queues without limit (`job_queue`,
//!   which also hands each job to the most recently idle worker).
//! - Only complete bodies reach the queue (see `intake`), so a stalled client holds no worker.
//!   Once a body is read, its connection's thread goes on to the connection's next request,
//!   while a worker serves this one; the answers still leave in the order of the requests
//!   (tiny_http's writers for one connection take turns).
//! - A panicking handler answers 500 (when it had not answered yet) and its worker lives on.
//! - After a refused body (too large, too slow) the connection closes: what follows it is
//!   not known to be a request.
//! - Shutdown stops accepting, answers requests arriving on open connections 503 and closes
//!   those, lets bodies being read join the queue, and lets queued and in-flight requests
//!   finish within the grace period, then returns.
//! - Client sockets carry read and write timeouts (`CLIENT_TIMEOUT_SECS`): set on the
//!   listener and inherited by every accepted socket, they bound slow bodies and headers,
//!   idle keep-alive connections, and streams to clients that stopped reading. (On the
//!   listener the read timeout also wakes `accept`; the patched tiny_http treats that, and
//!   every other accept error, as passing instead of ending its accept thread.)

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::Request;

use crate::config::Config;
use crate::error::ProxyError;
use crate::exchange::Exchange;
use crate::header_list::HeaderList;
use crate::intake;
use crate::job_queue::JobQueue;
use crate::logging::{Field, access};
use crate::metrics::{Metrics, RequestObservation};

/// Serves one exchange. Implemented by the router; tests wrap it.
pub trait Handler: Send + Sync + 'static {
    /// Answers the exchange (a handler that returns without answering gets a 500).
    fn handle(&self, exchange: &mut Exchange);
}

/// Limits the server needs from the configuration.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Worker threads.
    pub workers: usize,
    /// Queue depth.
    pub queue_depth: usize,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// Client socket read/write timeout, and the whole-body deadline.
    pub client_timeout: Duration,
}

impl ServerLimits {
    /// The limits from a configuration.
    pub fn from_config(config: &Config) -> Self {
        ServerLimits {
            workers: config.workers,
            queue_depth: config.queue_depth,
            max_body_bytes: config.max_body_bytes,
            client_timeout: config.client_timeout,
        }
    }
}

struct Job {
    request: Request,
    body: Vec<u8>,
    request_id: String,
    started: Instant,
}

/// A running server.
pub struct RunningServer {
    addr: SocketAddr,
    queue: Arc<JobQueue<Job>>,
    intakes: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    /// Dropping it stops accepting connections; requests that still arrive on open
    /// connections are answered 503 by `Intake`.
    listener: Option<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Stops accepting, lets in-flight and queued requests finish for up to `grace`.
    /// Returns true when every worker finished in time.
    pub fn stop(mut self, grace: Duration) -> bool {
        // From here on a request that arrives is answered 503 instead of queued.
        self.stopping.store(true, Ordering::SeqCst);
        drop(self.listener.take());
        log::info!("stopped accepting connections");
        let deadline = Instant::now() + grace;
        // Requests already being taken in (bodies being read) may still join the queue.
        while self.intakes.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The workers finish what is queued, then end.
        self.queue.close();
        while self.workers.iter().any(|w| !w.is_finished()) {
            if Instant::now() >= deadline {
                let busy = self.workers.iter().filter(|w| !w.is_finished()).count();
                log::warn!("shutdown grace period over with {busy} request(s) still running");
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        true
    }
}

/// Binds `host:port` and starts the listener and the workers.
pub fn start(
    host: &str,
    port: u16,
    limits: ServerLimits,
    handler: Arc<dyn Handler>,
    metrics: Arc<Metrics>,
) -> io::Result<RunningServer> {
    let listener = bind_with_timeouts(host, port, limits.client_timeout)?;
    let addr = listener.local_addr()?;
    let queue = Arc::new(JobQueue::new(limits.workers, limits.queue_depth));
    let mut workers = Vec::with_capacity(limits.workers);
    for index in 0..limits.workers {
        let queue = queue.clone();
        let handler = handler.clone();
        let metrics = metrics.clone();
        let worker = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || work(&queue, index, handler.as_ref(), &metrics))?;
        workers.push(worker);
    }
    let stopping = Arc::new(AtomicBool::new(false));
    let intakes = Arc::new(AtomicUsize::new(0));
    let intake = Intake {
        queue: queue.clone(),
        limits,
        metrics,
        stopping: stopping.clone(),
        running: intakes.clone(),
    };
    let sink: tiny_http::RequestSink = Arc::new(move |request| intake.take(request));
    let listener = tiny_http::Server::from_listener_with_sink(listener, sink)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(RunningServer {
        addr,
        queue,
        intakes,
        stopping,
        listener: Some(listener),
        workers,
    })
}

/// A listener whose accepted sockets inherit read and write timeouts and `TCP_NODELAY` (Linux
/// copies socket options from the listening socket to accepted ones).
fn bind_with_timeouts(host: &str, port: u16, timeout: Duration) -> io::Result<TcpListener> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let listener = TcpListener::bind((host, port))?;
    // std offers socket timeouts on TcpStream only; the setsockopt calls are the same on
    // any socket, so the listener's descriptor passes through a TcpStream and back.
    let as_stream = TcpStream::from(OwnedFd::from(listener));
    as_stream.set_read_timeout(Some(timeout))?;
    as_stream.set_write_timeout(Some(timeout))?;
    // Every event is its own small write; with Nagle's algorithm each one after the first would
    // wait for the client's delayed ACK (up to 40 ms). Inherited like the timeouts.
    as_stream.set_nodelay(true)?;
    Ok(TcpListener::from(OwnedFd::from(as_stream)))
}

/// What the connection threads share to hand requests to the workers.
struct Intake {
    queue: Arc<JobQueue<Job>>,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    stopping: Arc<AtomicBool>,
    /// Requests being taken in now (a shutdown waits for them).
    running: Arc<AtomicUsize>,
}

impl Intake {
    /// Takes one request in, on the connection's own thread (tiny_http reads that
    /// connection's next request only after this returns): reads its body under the limits,
    /// then queues it for a worker, or answers at once. A client that stalls its body holds
    /// only its own connection's thread. Returns whether the connection stays open.
    fn take(&self, mut request: Request) -> bool {
        let _running = IntakeRunning::start(&self.running);
        let request_id = new_request_id();
        let started = Instant::now();
        if self.stopping.load(Ordering::SeqCst) {
            return refuse(
                request,
                &ProxyError::ShuttingDown,
                request_id,
                started,
                &self.metrics,
            );
        }
        let limits = &self.limits;
        match intake::read_body(&mut request, limits.max_body_bytes, limits.client_timeout) {
            Ok(body) => {
                let job = Job {
                    request,
                    body,
                    request_id,
                    started,
                };
                enqueue(&self.queue, job, &self.metrics);
                true
            }
            Err(error) => refuse(request, &error, request_id, started, &self.metrics),
        }
    }
}

/// Counts one request being taken in while it lives, so a shutdown waits for bodies being
/// read.
struct IntakeRunning(Arc<AtomicUsize>);

impl IntakeRunning {
    fn start(running: &Arc<AtomicUsize>) -> Self {
        running.fetch_add(1, Ordering::SeqCst);
        IntakeRunning(running.clone())
    }
}

impl Drop for IntakeRunning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Puts a job on the queue, or answers 503 at once when the queue is full.
fn enqueue(queue: &JobQueue<Job>, job: Job, metrics: &Arc<Metrics>) {
    // Counted before the push so a worker that takes the job at once never sees it negative.
    metrics.queued.fetch_add(1, Ordering::Relaxed);
    match queue.try_push(job) {
        Ok(()) => {}
        Err(job) => {
            metrics.queued.fetch_sub(1, Ordering::Relaxed);
            metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            // On the connection's own thread: behind a pipelined request still being served
            // this waits for that answer, and holds up no other connection.
            let Job {
                request,
                request_id,
                started,
                ..
            } = job;
            // The connection stays open either way: it asked nothing wrong.
            refuse(
                request,
                &ProxyError::Overloaded,
                request_id,
                started,
                metrics,
            );
        }
    }
}

/// Answers an error before the request reached a worker. Returns whether the connection
/// stays open: not after a body too large or too slow (what follows on the connection is
/// not known to be a request), nor during a shutdown.
fn refuse(
    request: Request,
    error: &ProxyError,
    request_id: String,
    started: Instant,
    metrics: &Arc<Metrics>,
) -> bool {
    let mut exchange = Exchange::new(request, Vec::new(), request_id, started, metrics.clone());
    let closes = matches!(
        error,
        ProxyError::PayloadTooLarge { .. } | ProxyError::RequestTimeout | ProxyError::ShuttingDown
    );
    let extra = if closes {
        HeaderList::of([("Connection", "close")])
    } else {
        HeaderList::new()
    };
    exchange.respond_error(error, &extra);
    record(&exchange, metrics);
    !closes
}

fn work(queue: &JobQueue<Job>, index: usize, handler: &dyn Handler, metrics: &Arc<Metrics>) {
    while let Some(job) = queue.pop(index) {
        metrics.queued.fetch_sub(1, Ordering::Relaxed);
        metrics.busy_workers.fetch_add(1, Ordering::Relaxed);
        let mut exchange = Exchange::new(
            job.request,
            job.body,
            job.request_id,
            job.started,
            metrics.clone(),
        );
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&mut exchange)));
        if outcome.is_err() {
            log::error!("{} handler panicked; answering 500", exchange.request_id);
        }
        if !exchange.is_answered() {
            exchange.respond_error(&ProxyError::Internal, &HeaderList::EMPTY);
        }
        metrics.busy_workers.fetch_sub(1, Ordering::Relaxed);
        record(&exchange, metrics);
    }
}

/// The request's metrics and its access log line: metadata only, never a key, a token, a
/// prompt or a completion.
fn record(exchange: &Exchange, metrics: &Metrics) {
    let route = crate::routes::route_name(exchange.path());
    let duration = exchange.started.elapsed();
    metrics.observe_request(&RequestObservation {
        route,
        status: exchange.status.unwrap_or(0),
        streamed: exchange.streamed,
        model: exchange.model.as_deref(),
        duration,
        first_byte: exchange.first_byte,
        client_disconnected: exchange.client_disconnected,
    });
    if !crate::logging::access_enabled() {
        return;
    }
    let text = |value: Option<&str>| value.map_or(Field::None, |v| Field::Text(v.to_string()));
    let millis = |value: Option<Duration>| {
        value.map_or(Field::None, |v| Field::Number(v.as_millis() as u64))
    };
    access(&[
        ("id", Field::Text(exchange.request_id.clone())),
        ("method", Field::Text(exchange.method().to_string())),
        ("route", Field::Text(route.to_string())),
        ("model", text(exchange.model.as_deref())),
        ("stream", Field::Flag(exchange.streamed)),
        (
            "status",
            exchange
                .status
                .map_or(Field::None, |s| Field::Number(u64::from(s))),
        ),
        (
            "upstream_status",
            exchange
                .upstream_status
                .map_or(Field::None, |s| Field::Number(u64::from(s))),
        ),
        ("duration_ms", millis(Some(duration))),
        ("ttfb_ms", millis(exchange.first_byte)),
        ("bytes", Field::Number(exchange.bytes_sent)),
        ("error", text(exchange.error_code.as_deref())),
        ("client_gone", Field::Flag(exchange.client_disconnected)),
        (
            "dropped",
            if exchange.dropped.is_empty() {
                Field::None
            } else {
                Field::Text(exchange.dropped.join(","))
            },
        ),
    ]);
}

/// A short random id (`req_` and 16 hex digits).
fn new_request_id() -> String {
    format!("req_{}", crate::ids::hex(&crate::ids::random_bytes::<8>()))
}
