//! Unit tests for [`CachingAllocator`](super::CachingAllocator): reuse by class, the caps,
//! `realloc` and `alloc_zeroed`, what is not cached, and many threads sharing the caches.

use super::*;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("layout")
}

/// Fills `size` bytes at `block` with a pattern derived from `seed`.
fn fill(block: *mut u8, size: usize, seed: u64) {
    for i in 0..size {
        unsafe {
            block
                .add(i)
                .write((seed.wrapping_mul(31).wrapping_add(i as u64)) as u8)
        };
    }
}

/// Whether the first `size` bytes at `block` still hold `fill`'s pattern for `seed`.
fn holds(block: *const u8, size: usize, seed: u64) -> bool {
    (0..size).all(
        |i| unsafe { block.add(i).read() } == (seed.wrapping_mul(31).wrapping_add(i as u64)) as u8,
    )
}

#[test]
fn a_freed_block_is_handed_out_again_for_any_size_of_its_class() {
    let allocator = CachingAllocator::new();
    unsafe {
        let first = allocator.alloc(layout(100));
        fill(first, 100, 1);
        allocator.dealloc(first, layout(100));
        assert_eq!(allocator.cached_blocks(128), 1);
        // 120 bytes round up to the same class (128), so the block comes back.
        let second = allocator.alloc(layout(120));
        assert_eq!(second, first);
        fill(second, 120, 2);
        assert_eq!(allocator.cached_blocks(128), 0);
        // Another class never gets it.
        allocator.dealloc(second, layout(120));
        let other = allocator.alloc(layout(200));
        assert_ne!(other, first);
        allocator.dealloc(other, layout(200));
    }
}

#[test]
fn a_full_free_list_gives_further_blocks_back_to_the_system() {
    let allocator = CachingAllocator::new();
    let size = 4096;
    let kept = capacity(class_of(layout(size)).expect("cached class"));
    let blocks: Vec<*mut u8> = (0..kept + 5)
        .map(|_| unsafe { allocator.alloc(layout(size)) })
        .collect();
    assert!(blocks.iter().all(|block| !block.is_null()));
    for block in &blocks {
        unsafe { allocator.dealloc(*block, layout(size)) };
    }
    assert_eq!(allocator.cached_blocks(size), kept);
    assert!(kept * size <= CLASS_BYTES);
}

#[test]
fn realloc_keeps_the_contents_across_classes_and_past_the_cached_sizes() {
    let allocator = CachingAllocator::new();
    let sizes = [
        10,
        16,
        24,
        100,
        127,
        5000,
        LARGEST_CACHED,
        LARGEST_CACHED + 1,
        70_000,
        300,
        8,
    ];
    unsafe {
        let mut block = allocator.alloc(layout(sizes[0]));
        fill(block, sizes[0], 7);
        for pair in sizes.windows(2) {
            let (old, new) = (pair[0], pair[1]);
            let moved = allocator.realloc(block, layout(old), new);
            assert!(!moved.is_null());
            assert!(holds(moved, old.min(new), 7), "{old} -> {new}");
            if class_of(layout(old)).is_some() && class_of(layout(old)) == class_of(layout(new)) {
                assert_eq!(moved, block, "{old} -> {new} stays in its block");
            }
            fill(moved, new, 7);
            block = moved;
        }
        allocator.dealloc(block, layout(8));
    }
}

#[test]
fn alloc_zeroed_clears_a_reused_block() {
    let allocator = CachingAllocator::new();
    unsafe {
        let block = allocator.alloc(layout(64));
        block.write_bytes(0xAB, 64);
        allocator.dealloc(block, layout(64));
        let zeroed = allocator.alloc_zeroed(layout(60));
        assert_eq!(zeroed, block);
        assert!((0..60).all(|i| zeroed.add(i).read() == 0));
        allocator.dealloc(zeroed, layout(60));
    }
}

#[test]
fn over_aligned_and_large_blocks_are_not_cached() {
    let allocator = CachingAllocator::new();
    unsafe {
        let aligned = Layout::from_size_align(64, 64).expect("layout");
        for _ in 0..3 {
            let block = allocator.alloc(aligned);
            assert_eq!(block as usize % 64, 0);
            allocator.dealloc(block, aligned);
        }
        assert_eq!(allocator.cached_blocks(64), 0);
        let large = layout(LARGEST_CACHED + 1);
        let block = allocator.alloc(large);
        fill(block, large.size(), 3);
        assert!(holds(block, large.size(), 3));
        allocator.dealloc(block, large);
    }
}

#[test]
fn threads_sharing_the_caches_never_get_the_same_block() {
    // Every thread fills each block it holds with its own pattern and checks it before
    // letting go: a block handed to two threads at once would show the other's bytes.
    let allocator = std::sync::Arc::new(CachingAllocator::new());
    let threads: Vec<_> = (0..2 * SHARDS as u64)
        .map(|thread| {
            let allocator = allocator.clone();
            std::thread::spawn(move || {
                let mut random = thread.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    random
                };
                let mut held: Vec<(*mut u8, usize, u64)> = Vec::new();
                for step in 0..5_000u64 {
                    let seed = thread << 32 | step;
                    let roll = next();
                    if held.len() < 64 && roll % 3 != 0 {
                        let size = 1 + (next() % 3000) as usize * if roll % 7 == 0 { 8 } else { 1 };
                        let block = unsafe { allocator.alloc(layout(size)) };
                        assert!(!block.is_null());
                        fill(block, size, seed);
                        held.push((block, size, seed));
                    } else if !held.is_empty() {
                        let index = (next() % held.len() as u64) as usize;
                        let (block, size, old_seed) = held.swap_remove(index);
                        assert!(
                            holds(block, size, old_seed),
                            "thread {thread} lost a block's bytes"
                        );
                        if roll % 5 == 0 {
                            let new_size = 1 + (next() % 5000) as usize;
                            let moved = unsafe { allocator.realloc(block, layout(size), new_size) };
                            assert!(holds(moved, size.min(new_size), old_seed));
                            fill(moved, new_size, seed);
                            held.push((moved, new_size, seed));
                        } else {
                            unsafe { allocator.dealloc(block, layout(size)) };
                        }
                    }
                }
                for (block, size, seed) in held {
                    assert!(holds(block, size, seed));
                    unsafe { allocator.dealloc(block, layout(size)) };
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread saw another's bytes");
    }
    let cached: usize = (0..CLASSES)
        .map(|class| allocator.cached_blocks(1 << (class as u32 + MIN_SHIFT)))
        .sum();
    assert!(cached > 0, "the caches were used");
}
