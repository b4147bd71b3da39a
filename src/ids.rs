//! Identifiers that must be unique and hard to guess, but are not secrets: request ids,
//! upstream session ids, chat completion ids.
//!
//! They are drawn from the standard library's SipHash keys, which each thread seeds once from
//! the operating system and then steps for every new `RandomState`: a keyed hash of a fresh
//! state is unpredictable without the keys and costs no system call, where `getrandom` cost
//! one per id (three per chat request). Secrets (PKCE verifiers, OAuth `state`) still come
//! from `getrandom`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mixed into every draw, so two draws never hash the same input even if the keys repeat.
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// 64 unpredictable bits.
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// `N` unpredictable bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    for chunk in bytes.chunks_mut(8) {
        let draw = random_u64().to_le_bytes();
        chunk.copy_from_slice(&draw[..chunk.len()]);
    }
    bytes
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A random UUID (version 4).
pub fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = random_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn draws_do_not_repeat_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| random_u64()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for draw in handle.join().expect("thread") {
                assert!(seen.insert(draw), "a draw repeated");
            }
        }
        assert_eq!(seen.len(), 40_000);
    }

    #[test]
    fn bits_are_spread() {
        // Every bit position is set in some draws and clear in others.
        let draws: Vec<u64> = (0..256).map(|_| random_u64()).collect();
        let ones = draws.iter().fold(0u64, |acc, d| acc | d);
        let zeros = draws.iter().fold(0u64, |acc, d| acc | !d);
        assert_eq!((ones, zeros), (u64::MAX, u64::MAX));
    }

    #[test]
    fn uuid_has_the_version_4_shape() {
        let id = uuid_v4();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn hex_is_lower_case_and_complete() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(random_bytes::<12>().len(), 12);
    }
}
