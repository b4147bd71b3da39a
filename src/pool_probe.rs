//! A link of the upstream agent's connector chain: a pooled connection is probed once,
//! when it is taken from ureq's pool for a call, not also when it is put back.
//!
//! ureq asks a connection `is_open` in two places: when a finished call returns it to the pool
//! (`Connection::reuse`) and when a call takes it out (`Pool::get`). For TCP each probe is three
//! system calls (non-blocking on, a `read` that must find nothing, non-blocking off), so six of
//! the proxy's 17 system calls per request were probes (`perf trace`), and the second three
//! run under the pool's mutex. The probe on return only decides whether a connection that died
//! or sent stray bytes is kept in the pool; the probe on taking decides it again, right before
//! the connection would be used, and drops it then. So the return is answered "open" without
//! a probe, and the take probes as before: no connection that fails the probe is ever used.
//!
//! Telling the two apart needs no guess: every call does I/O on its connection before returning
//! it, so the first `is_open` after I/O is the return, and any later one is a take. (Checked
//! against ureq 3.5.2, whose only callers of `is_open` are those two; the unit tests below pin
//! the rule.)

use std::fmt;

use ureq::Error;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Wraps each connection the links before it made.
#[derive(Debug, Default)]
pub struct ProbeWhenTaken;

impl<In: Transport> Connector<In> for ProbeWhenTaken {
    type Out = ProbedWhenTaken<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| ProbedWhenTaken {
            inner,
            returned: false,
        }))
    }
}

/// A connection whose probe on return to the pool is skipped.
pub struct ProbedWhenTaken<T> {
    inner: T,
    /// Asked `is_open` since its last I/O: it is in the pool.
    returned: bool,
}

impl<T: fmt::Debug> fmt::Debug for ProbedWhenTaken<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbedWhenTaken")
            .field("inner", &self.inner)
            .field("returned", &self.returned)
            .finish()
    }
}

impl<T: Transport> Transport for ProbedWhenTaken<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.returned = false;
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.returned = false;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.returned = false;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        if self.returned {
            // Taken from the pool for a call: probe.
            return self.inner.is_open();
        }
        // Put back after a call: the next take probes it.
        self.returned = true;
        true
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::LazyBuffers;

    /// A transport that counts its probes and answers them with `open`.
    #[derive(Debug)]
    struct Counting {
        buffers: LazyBuffers,
        probes: usize,
        open: bool,
    }

    impl Transport for Counting {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), Error> {
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            Ok(true)
        }
        fn is_open(&mut self) -> bool {
            self.probes += 1;
            self.open
        }
    }

    fn wrapped(open: bool) -> ProbedWhenTaken<Counting> {
        ProbedWhenTaken {
            inner: Counting {
                buffers: LazyBuffers::new(64, 64),
                probes: 0,
                open,
            },
            returned: false,
        }
    }

    #[test]
    fn the_return_is_not_probed_and_the_take_is() {
        let mut connection = wrapped(true);
        for _ in 0..3 {
            // A call: I/O, then the return to the pool, then the next call's take.
            assert!(
                connection
                    .transmit_output(1, NextTimeout::default())
                    .is_ok()
            );
            assert!(connection.await_input(NextTimeout::default()).is_ok());
            assert!(connection.is_open());
            assert!(connection.is_open());
        }
        assert_eq!(connection.inner.probes, 3, "one probe per take");
    }

    #[test]
    fn a_dead_connection_is_refused_when_taken() {
        let mut connection = wrapped(false);
        assert!(connection.maybe_await_input(NextTimeout::default()).is_ok());
        assert!(connection.is_open(), "kept on return");
        assert!(!connection.is_open(), "refused when taken");
        // Taken again later (a pool that kept it): probed again.
        assert!(!connection.is_open());
        assert_eq!(connection.inner.probes, 2);
    }
}
