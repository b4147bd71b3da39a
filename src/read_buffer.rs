//! A buffered reader for the upstream event stream, with a buffer reused across streams.
//!
//! A fresh 8 KiB buffer per upstream stream (std's `BufReader::new`, as before) is allocated
//! zeroed each time: callgrind counted about 8,900 instructions per proxied request (3 %),
//! nearly all in that allocation's `memset`. A worker serves one stream at a time, so each thread
//! keeps the buffer of its last stream and the next stream on that thread takes it over. The
//! bytes left in it are never read: only what the current stream's reads put there is handed
//! out (`position..filled`).

use std::cell::Cell;
use std::io::{self, BufRead, Read};

/// Bytes buffered per upstream stream (std's `BufReader` default).
pub const CAPACITY: usize = 8 << 10;

thread_local! {
    /// The buffer of the last stream this thread read, for the next one.
    static SPARE: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// `BufRead` over any `Read`; the buffer comes from, and goes back to, this thread's spare.
pub struct ReadBuffer<R> {
    inner: R,
    buffer: Box<[u8]>,
    /// Start of the bytes not consumed yet.
    position: usize,
    /// End of the bytes read into `buffer`.
    filled: usize,
}

impl<R: Read> ReadBuffer<R> {
    /// Buffers `inner` through `capacity` bytes.
    pub fn with_capacity(capacity: usize, inner: R) -> Self {
        let capacity = capacity.max(1);
        let buffer = SPARE
            .take()
            .filter(|spare| spare.len() == capacity)
            .unwrap_or_else(|| vec![0; capacity].into_boxed_slice());
        ReadBuffer {
            inner,
            buffer,
            position: 0,
            filled: 0,
        }
    }

    fn available(&self) -> &[u8] {
        self.buffer
            .get(self.position..self.filled)
            .unwrap_or_default()
    }
}

impl<R> Drop for ReadBuffer<R> {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // `try_with`: a thread being torn down has no spare left to keep it in.
        let _ = SPARE.try_with(|spare| spare.set(Some(buffer)));
    }
}

/// A `BufRead` that can tell whether its next `fill_buf` is answered from its buffer or has
/// to read (and so may wait).
pub trait Buffered: BufRead {
    /// Whether bytes not consumed yet are in the buffer.
    fn has_buffered(&self) -> bool;
}

impl<R: Read> Buffered for ReadBuffer<R> {
    fn has_buffered(&self) -> bool {
        self.position < self.filled
    }
}

impl<R: Read> BufRead for ReadBuffer<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.position >= self.filled {
            let read = self.inner.read(&mut self.buffer)?;
            // A reader that claims more than it was given is broken; stay in bounds anyway.
            self.filled = read.min(self.buffer.len());
            self.position = 0;
        }
        Ok(self.available())
    }

    fn consume(&mut self, amount: usize) {
        self.position = self.position.saturating_add(amount).min(self.filled);
    }
}

impl<R: Read> Read for ReadBuffer<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        if let (Some(to), Some(from)) = (out.get_mut(..count), available.get(..count)) {
            to.copy_from_slice(from);
        }
        self.consume(count);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, counting the calls.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            let count = self.bytes.len().min(self.step).min(out.len());
            let (now, later) = self.bytes.split_at(count);
            out[..count].copy_from_slice(now);
            self.bytes = later;
            Ok(count)
        }
    }

    #[test]
    fn lines_across_fills_come_out_whole_and_in_order() {
        let text = b"event: a\ndata: {\"x\":1}\n\nevent: b\ndata: {}\n\n";
        let inner = Trickle {
            bytes: text,
            step: 5,
            calls: 0,
        };
        let mut reader = ReadBuffer::with_capacity(4, inner);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).expect("read") == 0 {
                break;
            }
            lines.push(String::from_utf8(line).expect("utf-8"));
        }
        assert_eq!(lines.concat().as_bytes(), text);
        assert_eq!(lines[1], "data: {\"x\":1}\n");
        // A 4-byte buffer over 5-byte reads: each fill is one read of at most 4 bytes.
        assert_eq!(reader.inner.calls, text.len().div_ceil(4) + 1);
    }

    #[test]
    fn the_next_stream_on_a_thread_reuses_the_buffer_and_sees_none_of_the_old_bytes() {
        let first = ReadBuffer::with_capacity(
            16,
            Trickle {
                bytes: b"secret old bytes",
                step: 16,
                calls: 0,
            },
        );
        let mut first = first;
        assert_eq!(first.fill_buf().expect("fill"), b"secret old bytes");
        let address = first.buffer.as_ptr();
        drop(first);

        let mut second = ReadBuffer::with_capacity(
            16,
            Trickle {
                bytes: b"new",
                step: 16,
                calls: 0,
            },
        );
        assert_eq!(second.buffer.as_ptr(), address, "the spare was taken over");
        assert_eq!(second.fill_buf().expect("fill"), b"new");
        second.consume(3);
        assert_eq!(second.fill_buf().expect("fill"), b"");

        // Another size does not take the spare.
        let other = ReadBuffer::with_capacity(
            8,
            Trickle {
                bytes: b"",
                step: 1,
                calls: 0,
            },
        );
        assert_eq!(other.buffer.len(), 8);
    }

    #[test]
    fn read_and_consume_stay_in_bounds() {
        let inner = Trickle {
            bytes: b"abcdef",
            step: 6,
            calls: 0,
        };
        let mut reader = ReadBuffer::with_capacity(8, inner);
        let mut two = [0u8; 2];
        assert_eq!(reader.read(&mut two).expect("read"), 2);
        assert_eq!(&two, b"ab");
        assert!(reader.has_buffered());
        reader.consume(100);
        assert!(!reader.has_buffered());
        assert_eq!(reader.fill_buf().expect("fill"), b"");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("read");
        assert!(rest.is_empty());
    }
}
