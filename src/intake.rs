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

/// Reads the whole body, at most `limit` bytes, finishing by `deadline`.
pub fn read_body(
    request: &mut Request,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, ProxyError> {
    if declared_too_large(request, limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let declared = request.body_length();
    let started = Instant::now();
    let capacity = declared.unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(capacity);
    // Sized to the body when it is small: zeroing a fixed 16 KiB buffer cost more than reading
    // a typical 1 KiB body.
    let chunk_len = declared.map_or(16 * 1024, |length| length.saturating_add(1).min(16 * 1024));
    let mut chunk = vec![0u8; chunk_len];
    let reader = request.as_reader();
    loop {
        if started.elapsed() > deadline {
            return Err(ProxyError::RequestTimeout);
        }
        match reader.read(&mut chunk) {
            Ok(0) if declared.is_some_and(|length| length != body.len()) => {
                return Err(ProxyError::invalid_body(
                    "The request body ended before its declared Content-Length.",
                ));
            }
            Ok(0) => return Ok(body),
            Ok(read) => {
                if body.len() + read > limit {
                    return Err(ProxyError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk[..read]);
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ProxyError::RequestTimeout);
            }
            Err(_) => {
                return Err(ProxyError::invalid_body(
                    "The request body could not be read completely.",
                ));
            }
        }
    }
}
