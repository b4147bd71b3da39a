//! Reading request bodies: bounded in size and in time, and off the worker pool.
//!
//! tiny_http hands a request over once its headers are parsed; a body larger than its 1 KiB
//! read-ahead is still on the socket. Reading it on a worker would let a client that sends
//! headers and then stalls hold that worker. So bodies are read on the connection's own
//! thread (see `server`), which a stalled client already holds whatever it does; only a
//! complete body reaches the worker queue. The socket read timeout (set on the listener,
//! see `server`) bounds each read, and the deadline here the whole body.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use tiny_http::Request;

use crate::error::ProxyError;

/// The declared length is already over the limit: refuse before reading anything.
fn declared_too_large(request: &Request, limit: usize) -> bool {
    request.body_length().is_some_and(|length| length > limit)
}

/// Reads the whole body, at most `limit` bytes, finishing by `deadline`, then gives the
/// connection back to its thread (the patched tiny_http's `end_body`): its next request is
/// read while a worker serves this one, as tiny_http does on its own for bodies of up to
/// 1 KiB. Without it the connection's thread would wait for the worker to drop the request
/// and then be woken to read on: a futex wait and wake-up more per request (4.1 futex calls
/// per request with an agent's 34-message body against 2.1 with a short one, `strace`).
pub fn read_body(
    request: &mut Request,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, ProxyError> {
    let body = read_whole_body(request, limit, deadline)?;
    request.end_body();
    Ok(body)
}

/// The body itself, by the limits of [`read_body`].
fn read_whole_body(
    request: &mut Request,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, ProxyError> {
    if declared_too_large(request, limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let declared = request.body_length();
    let started = Instant::now();
    let reader = request.as_reader();
    match declared {
        // Read straight into the body: a separate read buffer cost an allocation, its zeroing
        // and a copy per request.
        Some(length) => {
            let mut body = vec![0u8; length];
            let mut filled = 0;
            while filled < length {
                if started.elapsed() > deadline {
                    return Err(ProxyError::RequestTimeout);
                }
                match reader.read(&mut body[filled..]) {
                    Ok(0) => {
                        return Err(ProxyError::invalid_body(
                            "The request body ended before its declared Content-Length.",
                        ));
                    }
                    Ok(read) => filled += read,
                    Err(error) => read_failure(&error)?,
                }
            }
            Ok(body)
        }
        None => {
            let mut body = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                if started.elapsed() > deadline {
                    return Err(ProxyError::RequestTimeout);
                }
                match reader.read(&mut chunk) {
                    Ok(0) => return Ok(body),
                    Ok(read) => {
                        if body.len() + read > limit {
                            return Err(ProxyError::PayloadTooLarge { limit });
                        }
                        body.extend_from_slice(&chunk[..read]);
                    }
                    Err(error) => read_failure(&error)?,
                }
            }
        }
    }
}

/// What a failed read means: `Ok` to read again (interrupted), else the caller's error.
fn read_failure(error: &std::io::Error) -> Result<(), ProxyError> {
    match error.kind() {
        ErrorKind::Interrupted => Ok(()),
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Err(ProxyError::RequestTimeout),
        _ => Err(ProxyError::invalid_body(
            "The request body could not be read completely.",
        )),
    }
}
