//! The Compute core cache behind [`SharedCache`].
//!
//! Transactions collapse concurrent lookups of one key: exactly one request is told it must
//! insert, the others wait for its object. That makes both `claim` (first one wins) and
//! `get_or_compute` (one computation for all concurrent callers) per-POP exact.

use std::io::Write;
use std::time::Duration;

use fastly::cache::core::{self, CacheKey, Transaction};

use crate::platform::cache::{CacheFailed, SharedCache};
use crate::platform::log::{Line, Log};

pub struct HostCache<'a> {
    /// Where a failed write is reported (it is never a request failure).
    pub log: &'a dyn Log,
}

fn cache_key(key: &str) -> CacheKey {
    CacheKey::copy_from_slice(format!("liveuser/{key}").as_bytes())
}

fn read_found(found: &core::Found) -> Option<Vec<u8>> {
    found.to_stream().ok().map(|body| body.into_bytes())
}

/// Inserts through a transaction that must insert.
fn insert(tx: Transaction, value: &[u8], ttl_ms: u64) -> bool {
    match tx.insert(Duration::from_millis(ttl_ms)).execute() {
        Ok(mut body) => body.write_all(value).is_ok() && body.finish().is_ok(),
        Err(_) => false,
    }
}

impl SharedCache for HostCache<'_> {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        let tx = Transaction::lookup(cache_key(key))
            .execute()
            .map_err(|_| CacheFailed)?;
        if !tx.must_insert() {
            return Ok(false);
        }
        if insert(tx, b"1", ttl_ms) {
            Ok(true)
        } else {
            Err(CacheFailed)
        }
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let found = core::lookup(cache_key(key)).execute().ok()??;
        read_found(&found)
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        let written = core::insert(cache_key(key), Duration::from_millis(ttl_ms))
            .execute()
            .and_then(|mut body| {
                body.write_all(value)
                    .map_err(|_| core::CacheError::InvalidOperation)?;
                body.finish()
                    .map_err(|_| core::CacheError::InvalidOperation)
            });
        if let Err(e) = written {
            // The key's kind only: limit keys carry a client key, which no log line does.
            let kind: String = key.split('/').take(2).collect::<Vec<_>>().join("/");
            self.log.emit(&Line::CacheSetFailed {
                key: &kind,
                error: &format!("{e:?}"),
            });
        }
    }

    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let Ok(tx) = Transaction::lookup(cache_key(key)).execute() else {
            return compute();
        };
        if !tx.must_insert_or_update() {
            if let Some(value) = tx.found().as_ref().and_then(read_found) {
                return Some(value);
            }
        }
        match compute() {
            Some(value) => {
                if tx.must_insert_or_update() {
                    insert(tx, &value, ttl_ms);
                }
                Some(value)
            }
            None => {
                // Let waiting requests go and compute for themselves.
                let _ = tx.cancel_insert_or_update();
                None
            }
        }
    }
}

/// These run inside Viceroy (`cargo test --target wasm32-wasip1 --lib host::`), against its
/// core cache. Each test uses keys of its own.
#[cfg(test)]
mod tests {
    use super::*;

    const CACHE: HostCache<'static> = HostCache {
        log: &crate::platform::log::Stdout,
    };

    #[test]
    fn a_claim_is_won_once_while_it_lives() {
        assert!(CACHE.claim("host-test/claim/a", 60_000));
        assert!(!CACHE.claim("host-test/claim/a", 60_000));
        assert!(CACHE.claim("host-test/claim/b", 60_000));
    }

    #[test]
    fn values_are_set_and_read_back() {
        assert_eq!(CACHE.get("host-test/value/a"), None);
        CACHE.set("host-test/value/a", b"42", 60_000);
        assert_eq!(CACHE.get("host-test/value/a"), Some(b"42".to_vec()));
    }

    #[test]
    fn a_value_is_computed_once_and_then_served_from_the_cache() {
        let mut runs = 0;
        let mut compute = || {
            runs += 1;
            Some(b"computed".to_vec())
        };
        let first = CACHE.get_or_compute("host-test/compute/a", 60_000, &mut compute);
        let second = CACHE.get_or_compute("host-test/compute/a", 60_000, &mut compute);
        assert_eq!(first.as_deref(), Some(&b"computed"[..]));
        assert_eq!(second, first);
        assert_eq!(runs, 1);
        // A failed computation caches nothing.
        let mut failing = || None;
        assert_eq!(
            CACHE.get_or_compute("host-test/compute/b", 60_000, &mut failing),
            None
        );
        assert_eq!(CACHE.get("host-test/compute/b"), None);
    }
}
