//! The outermost link of the upstream agent's connector chain: a request leaves in one write
//! where ureq would make two, and the socket's write timeout is set once, not per request.
//!
//! ureq sends a request's head and its body with one `transmit_output` each, so every
//! upstream call cost two `sendto` calls, and the backend two wakeups, for some 600 bytes.
//! Here a short output (the head) is held back and goes out in front of the next one (the
//! body) in a single write. Nothing held is ever left behind: it is sent before the
//! connection waits for input (a request without a body, or one that expects `100
//! Continue`), and a connection that still holds bytes reports itself closed, so the pool
//! drops it instead of prefixing the next request with them. Output too large to join the
//! held bytes in ureq's output buffer is sent shifted by them, and its tail is held instead,
//! so the order of the bytes on the wire never changes.
//!
//! ureq hands each write the time left until its deadline, which differs by microseconds from
//! one request to the next, and its TCP transport calls `setsockopt(SO_SNDTIMEO)` whenever the
//! value changes: twice per request. A write's time left is rounded up to whole
//! [`TIMEOUT_STEP`]s here, so the value repeats and the call is skipped. A deadline can come at
//! most one step later than configured; the configured timeouts are whole seconds.

use std::fmt;
use std::time::Duration as StdDuration;

use ureq::Error;
use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// The granularity a write's time left is rounded up to.
pub const TIMEOUT_STEP: StdDuration = StdDuration::from_millis(10);

/// Wraps each connection the links before it made.
#[derive(Debug, Default)]
pub struct CoalesceWrites;

impl<In: Transport> Connector<In> for CoalesceWrites {
    type Out = CoalescedWrites<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(CoalescedWrites::new))
    }
}

/// A connection whose short writes wait to go out with the next one.
pub struct CoalescedWrites<T> {
    inner: T,
    /// Output transmitted by ureq but not yet written to the connection.
    held: Vec<u8>,
    /// The (rounded) timeout ureq gave the held output.
    held_timeout: NextTimeout,
}

impl<T: fmt::Debug> fmt::Debug for CoalescedWrites<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalescedWrites")
            .field("inner", &self.inner)
            .field("held", &self.held.len())
            .finish()
    }
}

impl<T: Transport> CoalescedWrites<T> {
    fn new(inner: T) -> Self {
        CoalescedWrites {
            inner,
            held: Vec::new(),
            held_timeout: NextTimeout::default(),
        }
    }

    /// Writes the held output, if any, before the connection waits for input.
    fn send_held(&mut self) -> Result<(), Error> {
        let held = self.held.len();
        if held == 0 {
            return Ok(());
        }
        // ureq is not using its output buffer while it waits for input.
        self.inner.buffers().output()[..held].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(held, self.held_timeout)
    }
}

impl<T: Transport> Transport for CoalescedWrites<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = rounded_up(timeout);
        let held = self.held.len();
        let output = self.inner.buffers().output();
        if held == 0 {
            if amount <= output.len() / 2 {
                // Possibly a head: wait for the body (or for `await_input`).
                self.held.extend_from_slice(&output[..amount]);
                self.held_timeout = timeout;
                return Ok(());
            }
            return self.inner.transmit_output(amount, timeout);
        }
        if held + amount <= output.len() {
            // Held bytes, then this output, in one write.
            output.copy_within(..amount, held);
            output[..held].copy_from_slice(&self.held);
            self.held.clear();
            return self.inner.transmit_output(held + amount, timeout);
        }
        // Too long to join: write the held bytes and all but the last `held` bytes of this
        // output (`amount > output.len() / 2 >= held`, since only short output is held), and
        // hold that tail instead.
        let output = &mut output[..amount];
        output.rotate_right(held);
        output[..held].swap_with_slice(&mut self.held);
        self.held_timeout = timeout;
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.send_held()?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.send_held()?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        // Bytes still held belong to a request that never waited for its answer.
        self.held.is_empty() && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// `timeout` with its time left rounded up to whole [`TIMEOUT_STEP`]s.
fn rounded_up(mut timeout: NextTimeout) -> NextTimeout {
    if let Duration::Exact(left) = timeout.after {
        let step = TIMEOUT_STEP.as_nanos();
        let steps = left.as_nanos().div_ceil(step);
        let nanos = steps.saturating_mul(step);
        if let Ok(nanos) = u64::try_from(nanos) {
            timeout.after = Duration::Exact(StdDuration::from_nanos(nanos));
        }
    }
    timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::LazyBuffers;

    /// A transport that records every write and how often it was probed.
    #[derive(Debug)]
    struct Recording {
        buffers: LazyBuffers,
        writes: Vec<Vec<u8>>,
        timeouts: Vec<NextTimeout>,
    }

    impl Transport for Recording {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
            self.writes.push(self.buffers.output()[..amount].to_vec());
            self.timeouts.push(timeout);
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            Ok(true)
        }
        fn is_open(&mut self) -> bool {
            true
        }
    }

    const OUTPUT: usize = 64;

    fn connection() -> CoalescedWrites<Recording> {
        let inner = Recording {
            buffers: LazyBuffers::new(OUTPUT, OUTPUT),
            writes: Vec::new(),
            timeouts: Vec::new(),
        };
        CoalescedWrites::new(inner)
    }

    /// What ureq does for one output: fill the buffer, then transmit it.
    fn send(conn: &mut CoalescedWrites<Recording>, bytes: &[u8]) {
        conn.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        conn.transmit_output(bytes.len(), timeout_after(StdDuration::from_secs(5)))
            .unwrap();
    }

    fn timeout_after(left: StdDuration) -> NextTimeout {
        NextTimeout {
            after: Duration::Exact(left),
            ..NextTimeout::default()
        }
    }

    fn wire(conn: &CoalescedWrites<Recording>) -> Vec<u8> {
        conn.inner.writes.concat()
    }

    #[test]
    fn a_head_and_a_short_body_leave_in_one_write() {
        let mut conn = connection();
        send(&mut conn, b"HEAD\r\n\r\n");
        assert!(conn.inner.writes.is_empty(), "the head waits for the body");
        assert!(
            !conn.is_open(),
            "a connection holding bytes is not reusable"
        );
        send(&mut conn, b"{body}");
        assert_eq!(conn.inner.writes, vec![b"HEAD\r\n\r\n{body}".to_vec()]);
        assert!(conn.is_open());
    }

    #[test]
    fn held_output_is_written_before_waiting_for_input() {
        let mut conn = connection();
        send(&mut conn, b"GET / HTTP/1.1\r\n\r\n");
        conn.await_input(NextTimeout::default()).unwrap();
        assert_eq!(conn.inner.writes, vec![b"GET / HTTP/1.1\r\n\r\n".to_vec()]);

        send(&mut conn, b"again");
        conn.maybe_await_input(NextTimeout::default()).unwrap();
        assert_eq!(conn.inner.writes.len(), 2);
        assert_eq!(wire(&conn), b"GET / HTTP/1.1\r\n\r\nagain");
    }

    #[test]
    fn long_output_keeps_the_byte_order() {
        let mut conn = connection();
        let head = b"head:0123456789";
        let body: Vec<u8> = (0..OUTPUT as u8).map(|i| b'a' + i % 26).collect();
        let tail = b"end";
        send(&mut conn, head);
        send(&mut conn, &body);
        send(&mut conn, tail);
        conn.await_input(NextTimeout::default()).unwrap();
        let expected = [&head[..], &body, tail].concat();
        assert_eq!(wire(&conn), expected);
        assert_eq!(conn.inner.writes.len(), 2, "{:?}", conn.inner.writes);
        assert!(conn.is_open());
    }

    #[test]
    fn output_over_half_the_buffer_is_not_held() {
        let mut conn = connection();
        let long = vec![b'x'; OUTPUT / 2 + 1];
        send(&mut conn, &long);
        assert_eq!(conn.inner.writes, vec![long]);
    }

    #[test]
    fn time_left_is_rounded_up_to_the_step() {
        let just_under = StdDuration::from_secs(120) - StdDuration::from_micros(37);
        let rounded = rounded_up(timeout_after(just_under));
        assert_eq!(*rounded.after, StdDuration::from_secs(120));
        let exact = rounded_up(timeout_after(StdDuration::from_secs(3)));
        assert_eq!(*exact.after, StdDuration::from_secs(3));
        let zero = rounded_up(timeout_after(StdDuration::ZERO));
        assert_eq!(
            *zero.after,
            StdDuration::ZERO,
            "an expired deadline stays expired"
        );
        let never = rounded_up(NextTimeout::default());
        assert!(never.after.is_not_happening());
    }

    #[test]
    fn two_requests_get_the_same_write_timeout() {
        let mut conn = connection();
        for left in [
            StdDuration::from_micros(119_999_990),
            StdDuration::from_micros(119_999_403),
        ] {
            send(&mut conn, b"head");
            conn.buffers().output()[..4].copy_from_slice(b"body");
            conn.transmit_output(4, timeout_after(left)).unwrap();
        }
        let [first, second] = conn.inner.timeouts[..] else {
            panic!("{:?}", conn.inner.timeouts);
        };
        assert_eq!(first, second);
    }
}
