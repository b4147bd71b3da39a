//! SIGTERM and SIGINT, turned into a flag that the main thread polls.
//!
//! The standard library has no signal API, so this is one of the crate's two `unsafe` modules
//! (the other is `allocator`): one call to libc's `signal(2)` per signal, installing a handler
//! that only stores to an atomic (async-signal-safe). Both glibc and musl give `signal` BSD
//! semantics (SA_RESTART), so blocking calls elsewhere are not interrupted.
#![expect(unsafe_code, reason = "signal(2) has no safe wrapper in std")]

use std::sync::atomic::{AtomicBool, Ordering};

static RECEIVED: AtomicBool = AtomicBool::new(false);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_signal(_signum: i32) {
    RECEIVED.store(true, Ordering::SeqCst);
}

/// Installs the handlers. Call once, early in `main`.
pub fn install() {
    let handler = on_signal as extern "C" fn(i32) as usize;
    // SAFETY: `on_signal` only performs an atomic store, which is async-signal-safe, and
    // it lives for the whole program.
    unsafe {
        signal(SIGINT, handler);
        signal(SIGTERM, handler);
    }
}

/// Whether SIGTERM or SIGINT has arrived.
pub fn received() -> bool {
    RECEIVED.load(Ordering::SeqCst)
}
