//! Section 6c, part of `concurrency`: the floor of a relay with one thread per stream.
//!
//! The proxy is synchronous by design: a blocking worker thread per stream. Whether its CPU per
//! event can stay flat from 1 to 256 concurrent streams depends first on whether that model can
//! on this machine. This runs the smallest such relay, std only, in the benchmark's process:
//! per stream, a source thread writes section 6's events (48 of 96 bytes, the pause per stream
//! = streams × 125 µs) into a loopback socket, a relay thread reads them into an 8 KiB buffer
//! and writes each to a second socket, and a sink thread reads them. Each relay thread reads
//! its own CPU time from `/proc/thread-self/schedstat` (nanoseconds on CPU, kernel included)
//! around its copying; no HTTP, no parsing, no connection set-up, so what grows here is the
//! cost of the threads themselves (wake-ups, scheduling, caches).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::BenchResult;
use crate::report::Report;
use crate::stats::Table;

/// As section 6: 256 streams per row, each of 40 deltas and 8 other events.
const ROWS: [usize; 4] = [1, 16, 64, 256];
const STREAMS_PER_ROW: usize = 256;
const EVENTS: usize = 48;
const EVENT_BYTES: usize = 96;
const PAUSE_PER_STREAM: Duration = Duration::from_micros(125);

/// Stack of each of the three threads per stream.
const THREAD_STACK: usize = 64 << 10;

/// Runs the rows `passes` times, one pass after another, and adds their table (over all
/// passes) to `report`; answers each pass's relay CPU per event in the last row over the first.
pub fn run(report: &mut Report, passes: usize) -> BenchResult<Vec<f64>> {
    let mut table = Table::new(
        &format!(
            "6c. Floor: the smallest relay with one thread per stream (std only, in the benchmark's process; {passes} passes of 256 streams of 48 events of 96 bytes per row, no HTTP), CPU per event from each relay thread's schedstat"
        ),
        &[
            "streams",
            "events",
            "relay CPU µs / event",
            "vs 1 stream",
            "wall s",
        ],
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    // Per row: relay CPU nanoseconds and wall time over all passes.
    let mut totals = [(0u64, Duration::ZERO); ROWS.len()];
    let mut growths = Vec::with_capacity(passes);
    for _ in 0..passes {
        let mut first = None;
        for (&streams, total) in ROWS.iter().zip(&mut totals) {
            let began = Instant::now();
            let relay_ns = row(&listener, streams)?;
            total.0 += relay_ns;
            total.1 += began.elapsed();
            let ns = relay_ns as f64;
            match first {
                None => first = Some(ns),
                Some(first) if streams == ROWS[ROWS.len() - 1] && first > 0.0 => {
                    growths.push(ns / first);
                }
                Some(_) => {}
            }
        }
    }
    let events = STREAMS_PER_ROW * EVENTS * passes;
    let first = totals[0].0 as f64;
    for (&streams, &(relay_ns, wall)) in ROWS.iter().zip(&totals) {
        let cost = relay_ns as f64 / 1000.0 / events as f64;
        table.row(vec![
            streams.to_string(),
            events.to_string(),
            format!("{cost:.2}"),
            if first > 0.0 {
                format!("{:.2}", relay_ns as f64 / first)
            } else {
                "-".into()
            },
            format!("{:.1}", wall.as_secs_f64()),
        ]);
        let scenario = format!("streams-{streams}");
        report.csv.add(
            "concurrency",
            &scenario,
            "floor",
            "relay_cpu_per_event",
            format!("{cost:.3}"),
            "us",
        );
    }
    report.table(&table);
    Ok(growths)
}

/// One row: 256 streams, `streams` at a time; answers the relay threads' CPU nanoseconds.
fn row(listener: &TcpListener, streams: usize) -> io::Result<u64> {
    let pause = PAUSE_PER_STREAM * u32::try_from(streams).unwrap_or(u32::MAX);
    let relay_ns = Arc::new(AtomicU64::new(0));
    for _ in 0..STREAMS_PER_ROW / streams {
        let mut threads = Vec::with_capacity(3 * streams);
        for _ in 0..streams {
            let (source, relay_in) = pair(listener)?;
            let (relay_out, sink) = pair(listener)?;
            let relay_ns = relay_ns.clone();
            threads.push(spawn(move || relay(relay_in, relay_out, &relay_ns))?);
            threads.push(spawn(move || send_events(source, pause))?);
            threads.push(spawn(move || read_all(sink))?);
        }
        for thread in threads {
            thread
                .join()
                .map_err(|_| io::Error::other("a floor thread panicked"))??;
        }
    }
    Ok(relay_ns.load(Ordering::Relaxed))
}

fn spawn(
    work: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<thread::JoinHandle<io::Result<()>>> {
    thread::Builder::new().stack_size(THREAD_STACK).spawn(work)
}

/// Two ends of one loopback connection, without Nagle's delay (as the proxy's sockets).
fn pair(listener: &TcpListener) -> io::Result<(TcpStream, TcpStream)> {
    let near = TcpStream::connect(listener.local_addr()?)?;
    let (far, _) = listener.accept()?;
    near.set_nodelay(true)?;
    far.set_nodelay(true)?;
    Ok((near, far))
}

fn relay(mut from: TcpStream, mut to: TcpStream, relay_ns: &AtomicU64) -> io::Result<()> {
    let start = own_cpu_ns()?;
    let mut buffer = vec![0u8; 8 << 10];
    loop {
        let read = from.read(&mut buffer)?;
        let Some(bytes) = buffer.get(..read).filter(|bytes| !bytes.is_empty()) else {
            break;
        };
        to.write_all(bytes)?;
    }
    drop(to);
    relay_ns.fetch_add(own_cpu_ns()?.saturating_sub(start), Ordering::Relaxed);
    Ok(())
}

fn send_events(mut to: TcpStream, pause: Duration) -> io::Result<()> {
    let event = [b'x'; EVENT_BYTES];
    for _ in 0..EVENTS {
        to.write_all(&event)?;
        thread::sleep(pause);
    }
    Ok(())
}

fn read_all(mut from: TcpStream) -> io::Result<()> {
    let mut received = Vec::with_capacity(EVENTS * EVENT_BYTES);
    from.read_to_end(&mut received)?;
    if received.len() == EVENTS * EVENT_BYTES {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "a floor stream delivered {} of {} bytes",
            received.len(),
            EVENTS * EVENT_BYTES
        )))
    }
}

/// This thread's time on CPU so far, in nanoseconds (user and kernel).
fn own_cpu_ns() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    text.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::other("unreadable /proc/thread-self/schedstat"))
}
