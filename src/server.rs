//! The server: a tiny_http listener, a dispatcher, a bounded queue and a fixed worker pool.
//!
//! Invariants enforced here:
//! - Concurrency is bounded by `WORKERS`, waiting by `QUEUE_DEPTH`; beyond both the proxy
//!   answers 503 with `Retry-After` at once and never queues without limit (`job_queue`,
//!   which also hands each job to the most recently idle worker).
//! - Only complete bodies reach the queue (see `intake`), so a stalled client holds no worker.
//! - A panicking handler answers 500 (when it had not answered yet) and its worker lives on.
//! - Shutdown stops accepting, lets bodies being read join the queue, and lets queued and
//!   in-flight requests finish within the grace period, then returns.
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
    dispatcher: Option<JoinHandle<()>>,
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
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(dispatcher) = self.dispatcher.take()
            && dispatcher.join().is_err()
        {
            log::error!("dispatcher thread panicked");
        }
        let deadline = Instant::now() + grace;
        // Bodies still being read were accepted: they may still join the queue.
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

/// Binds `host:port` and starts the dispatcher and the workers.
pub fn start(
    host: &str,
    port: u16,
    limits: ServerLimits,
    handler: Arc<dyn Handler>,
    metrics: Arc<Metrics>,
) -> io::Result<RunningServer> {
    let listener = bind_with_timeouts(host, port, limits.client_timeout)?;
    let addr = listener.local_addr()?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| io::Error::other(e.to_string()))?;
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
    let dispatcher = {
        let stopping = stopping.clone();
        let queue = queue.clone();
        let intakes = intakes.clone();
        std::thread::Builder::new()
            .name("dispatcher".into())
            .spawn(move || dispatch(server, &queue, &intakes, &limits, &stopping, &metrics))?
    };
    Ok(RunningServer {
        addr,
        queue,
        intakes,
        stopping,
        dispatcher: Some(dispatcher),
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

fn dispatch(
    server: tiny_http::Server,
    queue: &Arc<JobQueue<Job>>,
    intakes: &Arc<AtomicUsize>,
    limits: &ServerLimits,
    stopping: &AtomicBool,
    metrics: &Arc<Metrics>,
) {
    while !stopping.load(Ordering::SeqCst) {
        let mut request = match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(error) => {
                log::error!("accept failed: {}", error.kind());
                continue;
            }
        };
        let request_id = new_request_id();
        let started = Instant::now();
        if intake::may_block(&request)
            || intake::declared_too_large(&request, limits.max_body_bytes)
        {
            let queue = queue.clone();
            let limits = limits.clone();
            let metrics = metrics.clone();
            let running = IntakeRunning::start(intakes);
            let read_then_enqueue = move || {
                // Counted while the body is read and until the job is queued or refused.
                let _running = running;
                match intake::read_body(&mut request, limits.max_body_bytes, limits.client_timeout)
                {
                    Ok(body) => {
                        let job = Job {
                            request,
                            body,
                            request_id,
                            started,
                        };
                        enqueue(&queue, job, &metrics);
                    }
                    Err(error) => refuse(request, &error, request_id, started, &metrics),
                }
            };
            let spawned = std::thread::Builder::new()
                .name("intake".into())
                .spawn(read_then_enqueue);
            if let Err(error) = spawned {
                log::error!("could not start an intake thread: {}", error.kind());
            }
            continue;
        }
        // Already buffered by tiny_http: reading cannot block.
        match intake::read_body(&mut request, limits.max_body_bytes, limits.client_timeout) {
            Ok(body) => enqueue(
                queue,
                Job {
                    request,
                    body,
                    request_id,
                    started,
                },
                metrics,
            ),
            Err(error) => refuse(request, &error, request_id, started, metrics),
        }
    }
    log::info!("stopped accepting connections");
}

/// Counts one intake thread while it lives, so a shutdown waits for bodies being read.
struct IntakeRunning(Arc<AtomicUsize>);

impl IntakeRunning {
    fn start(intakes: &Arc<AtomicUsize>) -> Self {
        intakes.fetch_add(1, Ordering::SeqCst);
        IntakeRunning(intakes.clone())
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
            // Answered off the dispatcher: a pipelining client can make a write wait for
            // its previous response.
            let Job {
                request,
                request_id,
                started,
                ..
            } = job;
            let metrics = metrics.clone();
            let answer = move || {
                refuse(
                    request,
                    &ProxyError::Overloaded,
                    request_id,
                    started,
                    &metrics,
                )
            };
            if std::thread::Builder::new()
                .name("refuse".into())
                .spawn(answer)
                .is_err()
            {
                log::error!("could not start a thread to answer 503");
            }
        }
    }
}

/// Answers an error before the request reached a worker.
fn refuse(
    request: Request,
    error: &ProxyError,
    request_id: String,
    started: Instant,
    metrics: &Arc<Metrics>,
) {
    let mut exchange = Exchange::new(request, Vec::new(), request_id, started, metrics.clone());
    let close = [("Connection".to_string(), "close".to_string())];
    let extra: &[(String, String)] = if matches!(
        error,
        ProxyError::PayloadTooLarge { .. } | ProxyError::RequestTimeout
    ) {
        &close
    } else {
        &[]
    };
    exchange.respond_error(error, extra);
    record(&exchange, metrics);
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
            exchange.respond_error(&ProxyError::Internal, &[]);
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
