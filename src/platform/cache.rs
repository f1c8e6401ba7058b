//! The per-POP cache seam: short-lived shared values, and claims that exactly one concurrent
//! request wins. On Compute it is the core cache, whose transactions collapse concurrent
//! misses for one key: one request computes, the others wait for its result.
//!
//! A cache failure is never a request failure: it behaves as a miss (or a lost claim), or,
//! where a lost claim would refuse a client (the per-client limits), as no limit.

pub trait SharedCache {
    /// Claims `key` for `ttl_ms`: `Ok(true)` for exactly one caller while the claim lives,
    /// `Err` when the cache could not say.
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed>;
    /// [`SharedCache::try_claim`], with a failure as a lost claim.
    fn claim(&self, key: &str, ttl_ms: u64) -> bool {
        self.try_claim(key, ttl_ms).unwrap_or(false)
    }
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn set(&self, key: &str, value: &[u8], ttl_ms: u64);
    /// The cached value, or `compute`'s, computed once for all concurrent callers and cached
    /// for `ttl_ms`. `None` when `compute` fails (nothing is cached then).
    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>>;
}

/// The cache could not answer (an error of the host's cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheFailed;

/// Reads a cached decimal number.
pub fn get_u64(cache: &dyn SharedCache, key: &str) -> Option<u64> {
    parse_u64(&cache.get(key)?)
}

pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
