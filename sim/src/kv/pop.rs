//! One POP's view of the store, on one request's clock: the service's own `KvStore`, each
//! call a host call of the execution (metered, refused once Compute has stopped it).

use std::cell::{Cell, RefCell};

use liveuser_edge::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};

use super::model::KvModel;
use crate::clock::RequestClock;
use crate::compute::{Meter, Returned};
use crate::ops::{Ops, RequestOps};
use crate::params::Params;
use crate::rng::Rng;

/// One POP's view of the store, on one request's clock: the service's `KvStore`.
pub struct PopKv<'a> {
    pub model: &'a RefCell<KvModel>,
    pub pop: usize,
    pub clock: &'a RequestClock,
    pub rng: &'a Rng,
    pub params: &'a Params,
    pub request: &'a Cell<RequestOps>,
    /// Writes and deletes of keys under this prefix are timed (the site's presence keys).
    pub watch_prefix: &'a str,
    /// (key, commit time) of every successful write or delete under the watched prefix.
    pub commits: &'a RefCell<Vec<(String, u64)>>,
    /// The execution's use of Compute's limits: a stopped execution's calls fail.
    pub meter: &'a Meter,
    /// How far the POP is from the primary store, from 0 (next to it) to 1 (farthest).
    pub distance: f64,
}

impl PopKv<'_> {
    fn committed(&self, key: &str, at: u64) {
        if key.starts_with(self.watch_prefix) {
            let mut r = self.request.get();
            r.watched_commit_us = Some(at);
            self.request.set(r);
            self.commits.borrow_mut().push((key.to_string(), at));
        }
    }

    fn count(&self, f: impl FnOnce(&mut Ops)) {
        let mut r = self.request.get();
        f(&mut r.ops);
        self.request.set(r);
    }

    /// Runs one host call, unless Compute has stopped the execution; the service's CPU does
    /// not count meanwhile.
    fn host<T: Returned>(&self, call: impl FnOnce() -> Result<T, KvError>) -> Result<T, KvError> {
        if !self.meter.host_call(self.clock.now_us()) {
            return Err(stopped(self.meter));
        }
        let result = if self.model.borrow_mut().admit(self.clock.now_us()) {
            call()
        } else {
            // Refused by the store as a whole: a round trip, nothing done.
            self.clock.spend(self.params.kv_lookup.draw(self.rng));
            self.count(|o| o.rate_limited += 1);
            Err(KvError::TooManyRequests)
        };
        self.meter.host_done(result.heap_bytes());
        result
    }
}

impl Returned for Entry {
    fn heap_bytes(&self) -> usize {
        self.value.capacity()
    }
}

impl Returned for ListPage {
    fn heap_bytes(&self) -> usize {
        self.keys.heap_bytes() + self.next_cursor.heap_bytes()
    }
}

/// What a host call of a stopped execution gets.
pub fn stopped(meter: &Meter) -> KvError {
    KvError::Other(format!(
        "execution stopped by Compute's {} limit",
        meter.killed().map_or("", |l| l.name())
    ))
}

impl KvStore for PopKv<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.host(|| {
            let found = self
                .model
                .borrow_mut()
                .lookup(self.pop, self.clock.now_us(), key);
            self.count(|o| o.lookups += 1);
            self.clock.spend(self.params.kv_lookup.draw(self.rng));
            Ok(found)
        })
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        self.host(|| self.insert_now(key, value, ttl_secs, mode))
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.host(|| self.delete_now(key))
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        if !self.meter.host_call(self.clock.now_us()) {
            let e = stopped(self.meter);
            return keys.iter().map(|k| (k.clone(), e.clone())).collect();
        }
        let failed = self.delete_many_now(keys);
        self.meter.host_done(failed.heap_bytes());
        failed
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.host(|| self.list_now(prefix, cursor, limit))
    }
}

/// The calls themselves, once the meter let them through.
impl PopKv<'_> {
    fn insert_now(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        // The write commits at the primary store halfway through its round trip.
        let latency = self.params.kv_write.draw(self.rng);
        self.clock.spend(latency / 2);
        let result =
            self.model
                .borrow_mut()
                .insert(self.clock.now_us(), key, value, ttl_secs, mode);
        if result.is_ok() {
            self.committed(key, self.clock.now_us());
        }
        self.clock.spend(latency - latency / 2);
        self.count(|o| {
            o.inserts += 1;
            match result {
                Err(KvError::PreconditionFailed) => o.insert_conflicts += 1,
                Err(KvError::TooManyRequests) => o.rate_limited += 1,
                _ => {}
            }
        });
        result
    }

    fn delete_now(&self, key: &str) -> Result<(), KvError> {
        let latency = self.params.kv_delete.draw(self.rng);
        self.clock.spend(latency / 2);
        let result = self.model.borrow_mut().delete(self.clock.now_us(), key);
        if result.is_ok() {
            self.committed(key, self.clock.now_us());
        }
        self.clock.spend(latency - latency / 2);
        self.count(|o| o.deletes += 1);
        result
    }

    fn delete_many_now(&self, keys: &[String]) -> Vec<(String, KvError)> {
        // Deletes in flight together: a batch costs its slowest delete.
        let mut failed = Vec::new();
        for batch in keys.chunks(liveuser_edge::platform::kv::DELETE_BATCH) {
            let latencies: Vec<u64> = batch
                .iter()
                .map(|_| self.params.kv_delete.draw(self.rng))
                .collect();
            let start = self.clock.now_us();
            for (key, latency) in batch.iter().zip(&latencies) {
                let at = start + latency / 2;
                if !self.model.borrow_mut().admit(at) {
                    failed.push((key.clone(), KvError::TooManyRequests));
                    continue;
                }
                match self.model.borrow_mut().delete(at, key) {
                    Ok(()) => self.committed(key, at),
                    Err(e) => failed.push((key.clone(), e)),
                }
            }
            self.count(|o| o.deletes += batch.len() as u64);
            self.clock
                .spend(latencies.iter().copied().max().unwrap_or(0));
        }
        failed
    }

    fn list_now(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, KvError> {
        let page = self.model.borrow_mut().list(
            self.pop,
            self.clock.now_us(),
            prefix,
            cursor,
            Some(limit as usize),
        );
        let mut r = self.request.get();
        r.ops.list_pages += 1;
        r.ops.keys_listed += page.keys.len() as u64;
        // A count is the listing of the site's presence: its pages and when they were read.
        if !self.watch_prefix.is_empty() && prefix.starts_with(self.watch_prefix) {
            r.watched_pages += 1;
            r.watched_keys += page.keys.len() as u64;
            r.first_list_us.get_or_insert(self.clock.now_us());
            r.last_list_us = Some(self.clock.now_us());
        }
        self.request.set(r);
        let far = (self.distance * self.params.kv_list_far_ms as f64 * 1000.0) as u64;
        self.clock
            .spend(self.params.kv_list_page.draw(self.rng) + far);
        Ok(page)
    }
}
