//! A process's CPU time to the nanosecond, through its POSIX CPU-time clock.
//!
//! `/proc/<pid>/stat` reports user and system time in clock ticks of 10 ms. A part of a
//! benchmark that costs a process 40 ms of CPU is then read as 30, 40 or 50 ms: section 6's
//! rows were made of four such parts per path, and their per-event cost moved by a quarter
//! from run to run for that alone. `clock_getcpuclockid(pid)` names the same total (every
//! thread, live and ended) as a clock that `clock_gettime` reads in nanoseconds. Linux lets
//! any process read another's CPU clock. The two functions are in the C library every Rust
//! program on Linux links already, so no crate is needed for them.

#![allow(
    unsafe_code,
    reason = "two calls into the C library; each is handed only pointers to live locals"
)]

use std::io;
use std::time::Duration;

/// `struct timespec` on 64-bit Linux.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn clock_getcpuclockid(pid: i32, clock_id: *mut i32) -> i32;
    fn clock_gettime(clock_id: i32, time: *mut Timespec) -> i32;
}

/// User plus system CPU time of process `pid` so far, all its threads, live and ended.
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let pid = i32::try_from(pid).map_err(io::Error::other)?;
    let mut clock = 0i32;
    // SAFETY: `clock` is a live local the call writes one `clockid_t` (an int) into.
    let failed = unsafe { clock_getcpuclockid(pid, &mut clock) };
    if failed != 0 {
        return Err(io::Error::from_raw_os_error(failed));
    }
    let mut time = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a live, properly laid out `struct timespec` the call fills.
    if unsafe { clock_gettime(clock, &mut time) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let seconds = u64::try_from(time.tv_sec).map_err(io::Error::other)?;
    let nanos = u32::try_from(time.tv_nsec).map_err(io::Error::other)?;
    Ok(Duration::new(seconds, nanos))
}
