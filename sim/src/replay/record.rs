//! The recording half: the host services of one step, wrapped so that every answer is kept.

use liveuser_edge::platform::cache::{CacheFailed, SharedCache};
use liveuser_edge::platform::clock::Clock;
use liveuser_edge::platform::ids::IdSource;
use liveuser_edge::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use liveuser_edge::platform::peers::{PeerError, Peers};
use liveuser_edge::platform::publisher::{PublishError, PublishItem, Publisher};

use super::tape::{
    call, get_or_compute, items_fingerprint, requests_fingerprint, Answer, PackedPage, Tape,
};
use crate::compute::{Meter, Returned};

/// The host services of one step, each call's answer recorded on the tape before it is
/// handed on. Each host call runs in one window of the meter's (`open_host` … `close_host`):
/// the recording is the model's work, not the service's, and the CPU check before the call
/// may measure the step again (`remeasure`: the answers so far, and the call about to be made).
pub struct Recorder<'a> {
    pub kv: &'a dyn KvStore,
    pub cache: &'a dyn SharedCache,
    pub publisher: &'a dyn Publisher,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub peers: &'a dyn Peers,
    pub tape: &'a Tape,
    pub meter: &'a Meter,
    pub remeasure: &'a dyn Fn(u64) -> Option<u64>,
}

impl Recorder<'_> {
    fn record<T: Returned>(
        &self,
        fingerprint: u64,
        call: impl FnOnce() -> T,
        answer: impl FnOnce(&T) -> Answer,
    ) -> T {
        self.meter.open_host(|| (self.remeasure)(fingerprint));
        let result = call();
        self.tape.push(fingerprint, answer(&result));
        self.meter.close_host(result.heap_bytes());
        result
    }
}

impl KvStore for Recorder<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.record(
            call("lookup", key),
            || self.kv.lookup(key),
            |r| Answer::Lookup(r.clone()),
        )
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        self.record(
            call("insert", (key, value, ttl_secs, mode)),
            || self.kv.insert(key, value, ttl_secs, mode),
            |r| Answer::Write(r.clone()),
        )
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.record(
            call("delete", key),
            || self.kv.delete(key),
            |r| Answer::Write(r.clone()),
        )
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        self.record(
            call("delete_many", keys),
            || self.kv.delete_many(keys),
            |r| Answer::DeleteMany(r.clone()),
        )
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.record(
            call("list", (prefix, cursor, limit)),
            || self.kv.list(prefix, cursor, limit),
            |r| Answer::List(r.as_ref().map(PackedPage::pack).map_err(Clone::clone)),
        )
    }
}

impl SharedCache for Recorder<'_> {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        self.record(
            call("try_claim", (key, ttl_ms)),
            || self.cache.try_claim(key, ttl_ms),
            |r| Answer::Claim(*r),
        )
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.record(
            call("cache_get", key),
            || self.cache.get(key),
            |r| Answer::CacheGet(r.clone()),
        )
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        self.record(
            call("cache_set", (key, value, ttl_ms)),
            || self.cache.set(key, value, ttl_ms),
            |_| Answer::CacheSet,
        )
    }

    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        // As the simulated cache does it: a miss computes here, then stores.
        get_or_compute(self, key, ttl_ms, compute)
    }
}

impl Publisher for Recorder<'_> {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        self.record(
            call("publish", items_fingerprint(items)),
            || self.publisher.publish(items),
            |r| Answer::Publish(r.clone()),
        )
    }
}

impl Clock for Recorder<'_> {
    fn now_ms(&self) -> u64 {
        // Reading the clock is not a host call Compute could stop on: no window, no check.
        let now = self.clock.now_ms();
        self.tape.push(call("now", ()), Answer::Now(now));
        now
    }

    fn sleep_until(&self, at_ms: u64) {
        // Not a host call either: the request's clock moves on.
        self.clock.sleep_until(at_ms);
        self.tape.push(call("sleep", at_ms), Answer::Slept);
    }
}

impl IdSource for Recorder<'_> {
    fn random_u64s(&self) -> [u64; 2] {
        let ids = self.ids.random_u64s();
        self.tape.push(call("ids", ()), Answer::Ids(ids));
        ids
    }
}

impl Peers for Recorder<'_> {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        self.record(
            call("send_all", requests_fingerprint(&requests)),
            || self.peers.send_all(requests),
            |answers| {
                Answer::Peers(
                    answers
                        .iter()
                        .map(|a| {
                            a.as_ref()
                                .map(|r| (r.status().as_u16(), r.body().clone()))
                                .map_err(Clone::clone)
                        })
                        .collect(),
                )
            },
        )
    }
}
