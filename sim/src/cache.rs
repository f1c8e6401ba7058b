//! The cache of each POP: short-lived values and first-wins claims, as the Compute core cache
//! gives them. Requests in the simulation run one at a time, so the core cache's collapsing of
//! concurrent misses (one request computes, the others wait) holds by construction.

use std::cell::RefCell;
use std::collections::HashMap;

use liveuser_edge::platform::cache::{CacheFailed, SharedCache};

use crate::clock::{RequestClock, MS};
use crate::compute::{Meter, Returned};

/// One POP's cache contents: value and expiry (µs).
#[derive(Default)]
pub struct CacheModel {
    entries: HashMap<String, (Vec<u8>, u64)>,
}

impl CacheModel {
    /// Drops expired entries (the simulation calls this now and then to bound memory).
    pub fn collect_garbage(&mut self, t: u64) {
        self.entries.retain(|_, (_, until)| *until > t);
    }

    /// A dead POP loses its cache.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// One POP's cache on one request's clock: the service's `SharedCache`.
pub struct PopCache<'a> {
    pub model: &'a RefCell<CacheModel>,
    pub clock: &'a RequestClock,
    /// The execution's use of Compute's limits: a stopped execution's calls fail.
    pub meter: &'a Meter,
}

impl PopCache<'_> {
    /// Runs one host call, unless Compute has stopped the execution (then `stopped`).
    fn host<T: Returned>(&self, stopped: T, call: impl FnOnce() -> T) -> T {
        if !self.meter.host_call(self.clock.now_us()) {
            return stopped;
        }
        let result = call();
        self.meter.host_done(result.heap_bytes());
        result
    }

    fn store(&self, key: &str, value: &[u8], ttl_ms: u64) {
        let until = self.clock.now_us() + ttl_ms * MS;
        self.model
            .borrow_mut()
            .entries
            .insert(key.to_string(), (value.to_vec(), until));
    }

    fn live(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.clock.now_us();
        self.model
            .borrow()
            .entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    }
}

impl SharedCache for PopCache<'_> {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        self.host(Err(CacheFailed), || {
            if self.live(key).is_some() {
                return Ok(false);
            }
            self.store(key, b"1", ttl_ms);
            Ok(true)
        })
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.host(None, || self.live(key))
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        self.host((), || self.store(key, value, ttl_ms))
    }

    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if let Some(v) = self.get(key) {
            return Some(v);
        }
        // The computation is the service's own work (its CPU counts).
        let v = compute()?;
        self.set(key, &v, ttl_ms);
        Some(v)
    }
}
