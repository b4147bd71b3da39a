//! The global allocator of the static (musl) build: the C library's `malloc`, with freed small
//! blocks kept for reuse in a few shared caches.
//!
//! Why: musl's allocator (mallocng) serialises allocation on one process-wide lock, and gives a
//! size class's pages back to the kernel as soon as its last block is freed. A request allocates
//! about 200 blocks (1,500 for a long chat turn) that live only as long as it does, so under load
//! the workers queue on that lock, and map and unmap pages for the same sizes over and over:
//! 2 to 3.4 `mmap` calls per short request and 8 to 15 per agent turn (benchmark section 9),
//! against about none with glibc, whose per-thread caches do what this module does. With this
//! module: 0.1 to 0.2 per short request, 0.7 to 2.2 per agent turn.
//!
//! How:
//! - Blocks of up to [`LARGEST_CACHED`] bytes are rounded up to a power of two (a *class*, 16
//!   bytes and up), so any block of a class fits any request of that class.
//! - A freed block of a class goes on a free list of one of [`SHARDS`] caches, chained through
//!   its own first word; the next allocation of that class from a thread using the same cache
//!   takes it back without calling `malloc`. A thread keeps the cache it was first given
//!   (round-robin), so threads spread over the caches.
//! - A cache is guarded by a flag taken with one compare-and-swap. When the flag is taken (another
//!   thread is in the same cache at that instant), the caller does not wait: it calls `malloc` or
//!   `free` directly. So nothing here ever blocks, and nothing can deadlock.
//! - Each free list holds at most [`CLASS_BYTES`] bytes (and at most [`CLASS_BLOCKS`] blocks);
//!   past that a freed block goes back to `free`. All caches together hold at most
//!   [`MOST_CACHED_BYTES`] (2.7 MiB), whatever the number of threads, and a thread that exits
//!   leaves nothing behind that another cannot reuse.
//! - Larger blocks, and blocks aligned to more than 8 bytes, go to `malloc` and `free` unchanged.
//! - The glibc build keeps glibc's allocator (`main.rs`): on glibc this module cut callgrind's
//!   instructions per short request from 254k to 216k, but four interleaved throughput runs
//!   showed no gain in requests per second (a little less at 64 clients).
//!   `tests/caching_allocator.rs` serves requests in-process on this module, so `cargo test`
//!   exercises it on either C library.
//!
//! Invariants (what the `unsafe` below relies on):
//! - Every cached block was allocated by `System` with the layout of its class (size = class
//!   size, align 8), so handing it out for any layout of that class, or freeing it with the class
//!   layout, is what `System` expects.
//! - A free list is touched only by the thread that holds its cache's flag.
//! - A block on a free list belongs to no one else: it was given back by `dealloc` or `realloc`.

#![expect(
    unsafe_code,
    reason = "a global allocator is unsafe by definition: it hands out raw memory"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The smallest class: 16 bytes (`1 << MIN_SHIFT`).
const MIN_SHIFT: u32 = 4;
/// The largest block size kept for reuse.
pub const LARGEST_CACHED: usize = 64 << 10;
/// Classes 16, 32, ..., `LARGEST_CACHED` bytes.
const CLASSES: usize = (LARGEST_CACHED.trailing_zeros() - MIN_SHIFT + 1) as usize;
/// The alignment every `malloc` guarantees; cached blocks are allocated with it.
const BLOCK_ALIGN: usize = 8;
/// Caches shared by all threads.
pub const SHARDS: usize = 8;
/// Bytes one free list may hold (at least one block, for classes larger than this).
pub const CLASS_BYTES: usize = 32 << 10;
/// Blocks one free list may hold (for the small classes, where `CLASS_BYTES` would be thousands).
pub const CLASS_BLOCKS: usize = 128;
/// The most memory all the caches together can hold, whatever the number of threads.
pub const MOST_CACHED_BYTES: usize = {
    let mut bytes = 0;
    let mut class = 0;
    while class < CLASSES {
        bytes += capacity(class) * (1 << (class as u32 + MIN_SHIFT));
        class += 1;
    }
    SHARDS * bytes
};

// The bound the module notes promise, checked when compiling.
const _: () = assert!(MOST_CACHED_BYTES <= 4 << 20);

/// `malloc` with freed small blocks kept for reuse; see the module notes.
pub struct CachingAllocator {
    shards: [Shard; SHARDS],
    next_shard: AtomicUsize,
}

/// One cache: a flag and a free list per class.
struct Shard {
    busy: AtomicBool,
    lists: UnsafeCell<[FreeList; CLASSES]>,
}

/// Freed blocks of one class, chained through their first word.
struct FreeList {
    head: *mut u8,
    len: usize,
}

impl Shard {
    /// Runs `f` on this cache's free lists while holding its flag, or answers `None` at once
    /// when another thread holds it.
    fn try_with<T>(&self, f: impl FnOnce(&mut [FreeList; CLASSES]) -> T) -> Option<T> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: the flag is ours until the store below, so no other reference to the lists
        // exists.
        let answer = f(unsafe { &mut *self.lists.get() });
        self.busy.store(false, Ordering::Release);
        Some(answer)
    }
}

impl FreeList {
    /// Unlinks the most recently kept block, if any.
    fn pop(&mut self) -> Option<*mut u8> {
        if self.head.is_null() {
            return None;
        }
        let block = self.head;
        // SAFETY: a block on the list holds the next block's address in its first word
        // (written by `push`); blocks are 8-aligned and at least 16 bytes.
        self.head = unsafe { block.cast::<*mut u8>().read() };
        self.len -= 1;
        Some(block)
    }

    /// Links `block` in front.
    ///
    /// # Safety
    /// `block` is a block of this list's class that no one uses any more: 8-aligned and at
    /// least 16 bytes, so its first word can hold the chain.
    unsafe fn push(&mut self, block: *mut u8) {
        unsafe { block.cast::<*mut u8>().write(self.head) };
        self.head = block;
        self.len += 1;
    }
}

// SAFETY: a shard's lists are read and written only by the thread holding its `busy` flag
// (acquired with `Acquire`, released with `Release`), and the blocks on them are owned by no one.
unsafe impl Sync for Shard {}
// SAFETY: the blocks on the lists belong to the cache, not to a thread; any thread may hand
// them out or free them.
unsafe impl Send for Shard {}

thread_local! {
    /// The shard this thread uses (`usize::MAX` until its first allocation). A `const` `Cell`
    /// needs no destructor, so reading it allocates nothing and registers nothing.
    static THREAD_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The class of a block of `layout`, when blocks of that layout are cached.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > LARGEST_CACHED || layout.align() > BLOCK_ALIGN {
        return None;
    }
    let rounded = layout.size().max(1 << MIN_SHIFT).next_power_of_two();
    Some((rounded.trailing_zeros() - MIN_SHIFT) as usize)
}

/// The layout every block of `class` is allocated and freed with.
fn class_layout(class: usize) -> Layout {
    // SAFETY: the size is a power of two no larger than LARGEST_CACHED (class < CLASSES), far
    // from overflowing isize, and the alignment is a power of two.
    unsafe { Layout::from_size_align_unchecked(1 << (class as u32 + MIN_SHIFT), BLOCK_ALIGN) }
}

/// Blocks a free list of `class` may hold.
const fn capacity(class: usize) -> usize {
    let fitting = CLASS_BYTES >> (class as u32 + MIN_SHIFT);
    if fitting < 1 {
        1
    } else if fitting > CLASS_BLOCKS {
        CLASS_BLOCKS
    } else {
        fitting
    }
}

impl CachingAllocator {
    /// An allocator with empty caches.
    pub const fn new() -> Self {
        const EMPTY: FreeList = FreeList {
            head: ptr::null_mut(),
            len: 0,
        };
        CachingAllocator {
            shards: [const {
                Shard {
                    busy: AtomicBool::new(false),
                    lists: UnsafeCell::new([EMPTY; CLASSES]),
                }
            }; SHARDS],
            next_shard: AtomicUsize::new(0),
        }
    }

    /// This thread's shard, given round-robin on its first use.
    fn shard(&self) -> &Shard {
        let index = THREAD_SHARD
            .try_with(|shard| {
                if shard.get() == usize::MAX {
                    shard.set(self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS);
                }
                shard.get()
            })
            .unwrap_or(0);
        &self.shards[index % SHARDS]
    }

    /// A cached block of `class` (`< CLASSES`, from `class_of`), if this thread's cache has
    /// one and is free.
    fn take(&self, class: usize) -> Option<*mut u8> {
        self.shard().try_with(|lists| lists[class].pop()).flatten()
    }

    /// Puts `block` (of `class`, no longer used) on this thread's free list; answers whether it
    /// was kept (when not, the caller frees it).
    fn keep(&self, class: usize, block: *mut u8) -> bool {
        self.shard()
            .try_with(|lists| {
                let list = &mut lists[class];
                if list.len >= capacity(class) {
                    return false;
                }
                // SAFETY: the caller gave the block back, and it was allocated with the class
                // layout (8-aligned, at least 16 bytes).
                unsafe { list.push(block) };
                true
            })
            .unwrap_or(false)
    }

    /// Blocks held by all caches in the class of `size`-byte blocks (for tests; takes each
    /// cache's flag in turn, and counts a cache in use by another thread as empty).
    pub fn cached_blocks(&self, size: usize) -> usize {
        let Some(class) = Layout::from_size_align(size, 1).ok().and_then(class_of) else {
            return 0;
        };
        self.shards
            .iter()
            .filter_map(|shard| shard.try_with(|lists| lists[class].len))
            .sum()
    }
}

impl Drop for CachingAllocator {
    /// Gives every cached block back (the global allocator is never dropped; a test's is).
    fn drop(&mut self) {
        for shard in &mut self.shards {
            for (class, list) in shard.lists.get_mut().iter_mut().enumerate() {
                while let Some(block) = list.pop() {
                    // SAFETY: back to `System` with the layout it was allocated with.
                    unsafe { System.dealloc(block, class_layout(class)) };
                }
            }
        }
    }
}

impl Default for CachingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out is either fresh from `System` or a cached block of the same
// class, which is at least as large as asked and 8-aligned (the layouts cached ask for no more);
// every block given back goes either to a free list or to `System` with the layout it was
// allocated with (the class layout for cached classes, the caller's otherwise).
unsafe impl GlobalAlloc for CachingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            None => unsafe { System.alloc(layout) },
            Some(class) => match self.take(class) {
                Some(block) => block,
                None => unsafe { System.alloc(class_layout(class)) },
            },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            None => unsafe { System.alloc_zeroed(layout) },
            Some(class) => match self.take(class) {
                Some(block) => {
                    // A reused block holds its last owner's bytes.
                    unsafe { block.write_bytes(0, layout.size()) };
                    block
                }
                None => unsafe { System.alloc_zeroed(class_layout(class)) },
            },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            None => unsafe { System.dealloc(block, layout) },
            Some(class) => {
                if !self.keep(class, block) {
                    unsafe { System.dealloc(block, class_layout(class)) };
                }
            }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(new_layout) => new_layout,
            Err(_) => return ptr::null_mut(),
        };
        match (class_of(layout), class_of(new_layout)) {
            // Neither size is cached: the C library may grow the block in place.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            // The block already has room for the new size.
            (Some(old), Some(new)) if old == new => block,
            _ => {
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
#[path = "allocator_tests.rs"]
mod tests;
