//! Randomness for per-connection presence ids, behind a trait so tests are repeatable.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

pub trait IdSource {
    /// 128 unpredictable bits.
    fn random_u64s(&self) -> [u64; 2];
}

/// Randomness from the platform: std seeds `RandomState` from the OS (WASI's `random_get`
/// inside Compute), so two fresh hashers give two independent random words.
pub struct OsRandom;

impl IdSource for OsRandom {
    fn random_u64s(&self) -> [u64; 2] {
        let word = |salt: u64| {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(salt);
            h.finish()
        };
        [word(1), word(2)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_words_differ() {
        let a = OsRandom.random_u64s();
        let b = OsRandom.random_u64s();
        assert_ne!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
