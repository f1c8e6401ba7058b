//! Total visits, counted exactly without an atomic increment.
//!
//! The KV store has no increment, and one key takes only so many writes a second. So the
//! total is spread over [`SHARDS`] keys `total/<site>/<shard>`, each a decimal number. An
//! increment picks a random shard, reads it with its generation, and writes the new value only
//! if the generation is unchanged (or, for a missing shard, only if it is still missing). A lost
//! race or a rate limit is retried on another random shard, after a short random pause, up to
//! [`MAX_ATTEMPTS`] times; then it gives up and says so (the caller logs it). Two concurrent
//! increments can never both succeed on one read, so none is lost.
//!
//! Reading sums the shards (cached briefly by the caller).

use crate::cache::{self, SharedCache};
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::kv::{list_all, KvError, KvStore, WriteMode};
use crate::site::SiteId;

/// How many keys one site's total is spread over.
pub const SHARDS: u64 = 16;
/// How many conditional writes an increment tries before giving up.
pub const MAX_ATTEMPTS: u32 = 24;
/// The longest random pause between two attempts, in milliseconds.
const MAX_PAUSE_MS: u64 = 25;

/// Why an increment did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotalError {
    /// Every attempt lost a race or was rate limited.
    GaveUp { attempts: u32 },
    /// The store failed otherwise.
    Store(KvError),
    /// A shard holds something that is not a number.
    Corrupt { key: String },
}

impl std::fmt::Display for TotalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TotalError::GaveUp { attempts } => {
                write!(f, "gave up after {attempts} contended attempts")
            }
            TotalError::Store(e) => write!(f, "{e}"),
            TotalError::Corrupt { key } => write!(f, "KV key {key} does not hold a number"),
        }
    }
}

fn prefix(site: &SiteId) -> String {
    format!("total/{site}/")
}

fn shard_key(site: &SiteId, shard: u64) -> String {
    format!("{}{shard:02}", prefix(site))
}

fn parse(key: &str, value: &[u8]) -> Result<u64, TotalError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| TotalError::Corrupt {
            key: key.to_string(),
        })
}

/// Adds one visit. Returns how many attempts it took.
pub fn increment(
    kv: &dyn KvStore,
    ids: &dyn IdSource,
    clock: &dyn Clock,
    site: &SiteId,
) -> Result<u32, TotalError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let [r1, r2] = ids.random_u64s();
        let key = shard_key(site, r1 % SHARDS);
        let written = match kv.lookup(&key).map_err(TotalError::Store)? {
            Some(entry) => {
                let value = parse(&key, &entry.value)? + 1;
                kv.insert(
                    &key,
                    value.to_string().as_bytes(),
                    None,
                    WriteMode::IfGeneration(entry.generation),
                )
            }
            None => kv.insert(&key, b"1", None, WriteMode::AddOnly),
        };
        match written {
            Ok(()) => return Ok(attempt),
            Err(KvError::PreconditionFailed | KvError::TooManyRequests) => {
                // Spread the retries out so contenders do not collide again in lockstep.
                clock.sleep_until(clock.now_ms() + r2 % (MAX_PAUSE_MS + 1));
            }
            Err(e) => return Err(TotalError::Store(e)),
        }
    }
    Err(TotalError::GaveUp {
        attempts: MAX_ATTEMPTS,
    })
}

/// The site's total: the sum of its shards.
pub fn read(kv: &dyn KvStore, site: &SiteId) -> Result<u64, TotalError> {
    let mut total: u64 = 0;
    for key in list_all(kv, &prefix(site)).map_err(TotalError::Store)? {
        if let Some(entry) = kv.lookup(&key).map_err(TotalError::Store)? {
            total = total.saturating_add(parse(&key, &entry.value)?);
        }
    }
    Ok(total)
}

/// How long a read total is shared between requests, in milliseconds.
pub const CACHE_MS: u64 = 1000;

fn cache_key(site: &SiteId) -> String {
    format!("total/{site}")
}

/// The site's total, read at most once per [`CACHE_MS`] for all concurrent callers.
pub fn cached(kv: &dyn KvStore, shared: &dyn SharedCache, site: &SiteId) -> Option<u64> {
    let mut compute = || read(kv, site).ok().map(|n| n.to_string().into_bytes());
    cache::parse_u64(&shared.get_or_compute(&cache_key(site), CACHE_MS, &mut compute)?)
}

/// Makes `value` the site's cached total (after a fresh read or a write).
pub fn remember(shared: &dyn SharedCache, site: &SiteId, value: u64) {
    shared.set(&cache_key(site), value.to_string().as_bytes(), CACHE_MS);
}

/// Sets the site's total to `value` (0 resets it): shard 0 holds it, the others are deleted.
pub fn set(kv: &dyn KvStore, site: &SiteId, value: u64) -> Result<(), TotalError> {
    for key in list_all(kv, &prefix(site)).map_err(TotalError::Store)? {
        kv.delete(&key).map_err(TotalError::Store)?;
    }
    if value > 0 {
        kv.insert(
            &shard_key(site, 0),
            value.to_string().as_bytes(),
            None,
            WriteMode::Overwrite,
        )
        .map_err(TotalError::Store)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Entry, ListPage};
    use crate::testing::{CountingIds, ManualClock, MemoryKv};
    use std::cell::{Cell, RefCell};

    fn site() -> SiteId {
        SiteId::parse("s").expect("site")
    }

    /// A store whose conditional writes fail the next `fail` times with `error`, as a busy
    /// production store would.
    struct Contended {
        inner: MemoryKv,
        fail: Cell<u32>,
        error: KvError,
        attempts: RefCell<Vec<String>>,
    }

    impl KvStore for Contended {
        fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
            self.inner.lookup(key)
        }
        fn insert(
            &self,
            key: &str,
            value: &[u8],
            ttl: Option<u32>,
            mode: WriteMode,
        ) -> Result<(), KvError> {
            self.attempts.borrow_mut().push(key.to_string());
            if self.fail.get() > 0 {
                self.fail.set(self.fail.get() - 1);
                return Err(self.error.clone());
            }
            self.inner.insert(key, value, ttl, mode)
        }
        fn delete(&self, key: &str) -> Result<(), KvError> {
            self.inner.delete(key)
        }
        fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, KvError> {
            self.inner.list(prefix, cursor)
        }
    }

    fn contended(fail: u32, error: KvError) -> Contended {
        Contended {
            inner: MemoryKv::default(),
            fail: Cell::new(fail),
            error,
            attempts: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn increments_add_up_across_shards() {
        let kv = MemoryKv::default();
        let (ids, clock) = (CountingIds::default(), ManualClock::default());
        for _ in 0..100 {
            increment(&kv, &ids, &clock, &site()).expect("increment");
        }
        assert_eq!(read(&kv, &site()), Ok(100));
        assert!(kv.len() > 1, "spread over shards");
        assert!(kv.len() as u64 <= SHARDS);
    }

    #[test]
    fn precondition_failures_are_retried_on_other_shards_and_nothing_is_lost() {
        let kv = contended(5, KvError::PreconditionFailed);
        let (ids, clock) = (CountingIds::default(), ManualClock::default());
        assert_eq!(increment(&kv, &ids, &clock, &site()), Ok(6));
        assert_eq!(read(&kv.inner, &site()), Ok(1));
        let tried: std::collections::BTreeSet<String> =
            kv.attempts.borrow().iter().cloned().collect();
        assert!(tried.len() > 1, "retries moved to other shards: {tried:?}");
        assert!(clock.now_ms() > 0, "retries paused");
    }

    #[test]
    fn too_many_requests_is_retried_too() {
        let kv = contended(3, KvError::TooManyRequests);
        let (ids, clock) = (CountingIds::default(), ManualClock::default());
        assert_eq!(increment(&kv, &ids, &clock, &site()), Ok(4));
        assert_eq!(read(&kv.inner, &site()), Ok(1));
    }

    #[test]
    fn gives_up_cleanly_after_bounded_attempts() {
        let kv = contended(u32::MAX, KvError::PreconditionFailed);
        let (ids, clock) = (CountingIds::default(), ManualClock::default());
        assert_eq!(
            increment(&kv, &ids, &clock, &site()),
            Err(TotalError::GaveUp {
                attempts: MAX_ATTEMPTS
            })
        );
        assert_eq!(kv.attempts.borrow().len(), MAX_ATTEMPTS as usize);
        assert_eq!(read(&kv.inner, &site()), Ok(0));
    }

    #[test]
    fn other_store_errors_stop_at_once() {
        let kv = contended(1, KvError::Other("down".into()));
        let (ids, clock) = (CountingIds::default(), ManualClock::default());
        assert_eq!(
            increment(&kv, &ids, &clock, &site()),
            Err(TotalError::Store(KvError::Other("down".into())))
        );
        assert_eq!(kv.attempts.borrow().len(), 1);
    }

    #[test]
    fn a_concurrent_writer_between_read_and_write_loses_nothing() {
        // Interleave by hand: two increments read the same shard, one writes first.
        let kv = MemoryKv::default();
        let key = shard_key(&site(), 3);
        kv.insert(&key, b"10", None, WriteMode::Overwrite)
            .expect("seed");
        let a = kv.lookup(&key).expect("lookup").expect("entry");
        let b = kv.lookup(&key).expect("lookup").expect("entry");
        assert_eq!(
            kv.insert(&key, b"11", None, WriteMode::IfGeneration(a.generation)),
            Ok(())
        );
        assert_eq!(
            kv.insert(&key, b"11", None, WriteMode::IfGeneration(b.generation)),
            Err(KvError::PreconditionFailed)
        );
    }

    #[test]
    fn set_replaces_the_total_and_zero_resets_it() {
        let kv = MemoryKv::default();
        let (ids, clock) = (CountingIds::default(), ManualClock::default());
        for _ in 0..20 {
            increment(&kv, &ids, &clock, &site()).expect("increment");
        }
        set(&kv, &site(), 5000).expect("seed");
        assert_eq!(read(&kv, &site()), Ok(5000));
        increment(&kv, &ids, &clock, &site()).expect("increment");
        assert_eq!(read(&kv, &site()), Ok(5001));
        set(&kv, &site(), 0).expect("reset");
        assert_eq!(read(&kv, &site()), Ok(0));
        assert_eq!(kv.len(), 0);
    }

    #[test]
    fn a_corrupt_shard_is_an_error_not_a_zero() {
        let kv = MemoryKv::default();
        kv.insert(&shard_key(&site(), 1), b"abc", None, WriteMode::Overwrite)
            .expect("insert");
        assert!(matches!(
            read(&kv, &site()),
            Err(TotalError::Corrupt { .. })
        ));
    }
}
