//! Total visits, counted exactly without an atomic increment and without a hot key.
//!
//! The KV store has no increment, and one key takes only about one write a second, so no key
//! is written per visit twice. A visit is one insert-only write of a key of its own,
//! `site/<site>/v/<ms>/<random>` (beside the presence keys `site/<site>/p/…`, listed on their
//! own): visits never contend, whatever their rate.
//!
//! Broadcasts (at most one a second per site across every POP does this) *fold* the visit keys
//! of the past into the site's tally `total/<site>/tally`, whose value is
//! `<total> <last ms folded>`. The fold is one conditional write (generation match, or
//! insert-only for the first), so two folds can never both apply; and the tally names the
//! last moment it holds, so a visit key whose delete failed is never counted twice. The total
//! is the tally plus the visit keys after that moment.
//!
//! Only visits at least two seconds behind the folder's clock are folded, so a visit key is
//! folded only if it became visible at least two seconds after it was written (KV changes
//! reach every POP within ~300 ms).
//!
//! Reset and seed write the tally directly, naming their own moment as folded: visits
//! recorded before it are dropped, visits after it count. "Before" is by the clocks of the
//! POPs involved, which agree to a few milliseconds: a visit within those milliseconds of a
//! reset may land on either side.
//!
//! Totals kept by earlier versions (`total/<site>/00`…`15`, shards of a counter) are read while
//! the site has no tally; the first fold adds them into the tally and deletes them.

use crate::platform::clock::Clock;
use crate::platform::ids::IdSource;
use crate::platform::kv::{list_all, KvError, KvStore, WriteMode};
use crate::wire::site::SiteId;

/// How many times a visit is tried (a random key colliding, or a 429) before giving up.
pub const MAX_ATTEMPTS: u32 = 8;
/// The longest random pause between two attempts, in milliseconds.
const MAX_PAUSE_MS: u64 = 25;
/// How long an unfolded visit key lives. Folds run every second a site has traffic; a day is
/// a safety net for keys nobody folded, not a delay anyone waits for.
const VISIT_TTL_SECS: u32 = 86_400;
/// How long the tally lives after the write that stored it, in seconds: 400 days. Every fold
/// (a second with visits) and every reset or seed renews it, so a site loses its total only
/// after 400 days without a single visit; an invented site id's tally does not stay for good.
pub const TALLY_TTL_SECS: u32 = 400 * 86_400;
/// How far behind the folder's clock a visit must be to be folded, in milliseconds.
const FOLD_LAG_MS: u64 = 2000;

/// Why a visit or a total could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotalError {
    /// Every attempt was refused.
    GaveUp { attempts: u32 },
    /// The store failed otherwise.
    Store(KvError),
    /// A key holds something that is not a number.
    Corrupt { key: String },
}

impl std::fmt::Display for TotalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TotalError::GaveUp { attempts } => write!(f, "gave up after {attempts} attempts"),
            TotalError::Store(e) => write!(f, "{e}"),
            TotalError::Corrupt { key } => write!(f, "KV key {key} does not hold a number"),
        }
    }
}

fn total_prefix(site: &SiteId) -> String {
    format!("total/{site}/")
}

fn tally_key(site: &SiteId) -> String {
    format!("{}tally", total_prefix(site))
}

fn visit_prefix(site: &SiteId) -> String {
    format!("{}v/", site.listing_prefix())
}

fn visit_key(site: &SiteId, at_ms: u64, random: u64) -> String {
    // Zero-padded, so listings return visits in time order.
    format!("{}{at_ms:013}/{random:016x}", visit_prefix(site))
}

/// Adds one visit: one insert-only write. Returns how many attempts it took.
pub fn record_visit(
    kv: &dyn KvStore,
    ids: &dyn IdSource,
    clock: &dyn Clock,
    site: &SiteId,
) -> Result<u32, TotalError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let [random, pause] = ids.random_u64s();
        let key = visit_key(site, clock.now_ms(), random);
        match kv.insert(&key, b"", Some(VISIT_TTL_SECS), WriteMode::AddOnly) {
            Ok(()) => return Ok(attempt),
            // A random key that exists, or the store asking to slow down: try a fresh key.
            Err(KvError::PreconditionFailed | KvError::TooManyRequests) => {
                clock.sleep_until(clock.now_ms() + pause % (MAX_PAUSE_MS + 1));
            }
            Err(e) => return Err(TotalError::Store(e)),
        }
    }
    Err(TotalError::GaveUp {
        attempts: MAX_ATTEMPTS,
    })
}

/// The folded part of a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    total: u64,
    /// The last moment (ms) folded in (`None`: nothing folded yet, every visit is pending).
    through: Option<u64>,
    /// The tally key's generation (`None`: no tally yet; `total` is then the legacy shards').
    generation: Option<u64>,
}

fn parse_number(key: &str, text: &str) -> Result<u64, TotalError> {
    text.trim().parse().map_err(|_| TotalError::Corrupt {
        key: key.to_string(),
    })
}

fn read_tally(kv: &dyn KvStore, site: &SiteId) -> Result<Tally, TotalError> {
    let key = tally_key(site);
    if let Some(entry) = kv.lookup(&key).map_err(TotalError::Store)? {
        let text = String::from_utf8_lossy(&entry.value);
        let (total, through) = text
            .split_once(' ')
            .ok_or_else(|| TotalError::Corrupt { key: key.clone() })?;
        return Ok(Tally {
            total: parse_number(&key, total)?,
            through: Some(parse_number(&key, through)?),
            generation: Some(entry.generation),
        });
    }
    // No tally yet: an earlier version's shards, if any, hold the total so far.
    let mut total: u64 = 0;
    for shard in legacy_shards(kv, site)? {
        if let Some(entry) = kv.lookup(&shard).map_err(TotalError::Store)? {
            total = total.saturating_add(parse_number(
                &shard,
                &String::from_utf8_lossy(&entry.value),
            )?);
        }
    }
    Ok(Tally {
        total,
        through: None,
        generation: None,
    })
}

fn legacy_shards(kv: &dyn KvStore, site: &SiteId) -> Result<Vec<String>, TotalError> {
    let tally = tally_key(site);
    Ok(list_all(kv, &total_prefix(site))
        .map_err(TotalError::Store)?
        .into_iter()
        .filter(|k| *k != tally)
        .collect())
}

/// A site's total as a broadcast reads it, and the keys it leaves to delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settled {
    pub total: u64,
    /// Visit keys folded in (or folded earlier and left behind): delete them, best effort.
    pub to_delete: Vec<String>,
    /// Whether this call folded.
    pub folded: bool,
}

/// Reads the site's total; with `fold`, first folds the visits of the past into the tally.
/// Only one caller a second should fold (broadcasts whose slot crosses a second boundary): the
/// tally takes one write a second.
pub fn settle(
    kv: &dyn KvStore,
    site: &SiteId,
    now_ms: u64,
    fold: bool,
) -> Result<Settled, TotalError> {
    let keys = list_all(kv, &visit_prefix(site)).map_err(TotalError::Store)?;
    settle_listed(kv, site, now_ms, fold, &keys)
}

/// [`settle`] with the site's keys already listed (other keys are passed over).
pub fn settle_listed(
    kv: &dyn KvStore,
    site: &SiteId,
    now_ms: u64,
    fold: bool,
    keys: &[String],
) -> Result<Settled, TotalError> {
    let mut tally = read_tally(kv, site)?;
    let prefix = visit_prefix(site);
    let mut visits: Vec<(u64, String)> = Vec::new();
    // Listings are sorted: the visit keys are one run, found without reading the others.
    let first = keys.partition_point(|k| k.as_str() < prefix.as_str());
    for key in keys[first..].iter().take_while(|k| k.starts_with(&prefix)) {
        let second = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').next())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(second) = second {
            visits.push((second, key.clone()));
        }
    }
    let mut settled = Settled::default();
    let target = now_ms.saturating_sub(FOLD_LAG_MS);
    let pending = |second: u64, tally: &Tally| tally.through.is_none_or(|t| second > t);
    if fold && tally.through.is_none_or(|t| target > t) {
        let folding = visits
            .iter()
            .filter(|(s, _)| pending(*s, &tally) && *s <= target)
            .count() as u64;
        let folded = Tally {
            total: tally.total.saturating_add(folding),
            through: Some(target),
            generation: None,
        };
        let mode = tally
            .generation
            .map_or(WriteMode::AddOnly, WriteMode::IfGeneration);
        let value = format!("{} {target}", folded.total);
        match kv.insert(
            &tally_key(site),
            value.as_bytes(),
            Some(TALLY_TTL_SECS),
            mode,
        ) {
            Ok(()) => {
                if tally.generation.is_none() {
                    settled.to_delete.extend(legacy_shards(kv, site)?);
                }
                tally = folded;
                settled.folded = true;
            }
            // Another fold got there first, or the tally was just written: the total below
            // is still right for the tally this call read.
            Err(KvError::PreconditionFailed | KvError::TooManyRequests) => {}
            Err(e) => return Err(TotalError::Store(e)),
        }
    }
    let mut unfolded: u64 = 0;
    for (second, key) in visits {
        if pending(second, &tally) {
            unfolded += 1;
        } else if settled.folded {
            settled.to_delete.push(key);
        }
    }
    settled.total = tally.total.saturating_add(unfolded);
    Ok(settled)
}

/// Sets the site's total to `value` (0 resets it): visits recorded before now are dropped,
/// later ones count on top; see the module's notes.
pub fn set(
    kv: &dyn KvStore,
    clock: &dyn Clock,
    site: &SiteId,
    value: u64,
) -> Result<(), TotalError> {
    let through = clock.now_ms();
    let text = format!("{value} {through}");
    // The tally may have been folded into less than a second ago (a 429): wait and retry.
    let mut last = KvError::TooManyRequests;
    for _ in 0..MAX_ATTEMPTS {
        match kv.insert(
            &tally_key(site),
            text.as_bytes(),
            Some(TALLY_TTL_SECS),
            WriteMode::Overwrite,
        ) {
            Ok(()) => {
                // Shards of an earlier version no longer count once a tally exists; removing
                // them is tidying, so a failure here does not undo the reset.
                if let Ok(shards) = legacy_shards(kv, site) {
                    kv.delete_many(&shards);
                }
                return Ok(());
            }
            Err(KvError::TooManyRequests) => clock.sleep_until(clock.now_ms() + 250),
            Err(e) => {
                last = e;
                break;
            }
        }
    }
    Err(TotalError::Store(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kv::{Entry, ListPage};
    use crate::platform::testing::{CountingIds, ManualClock, MemoryKv};
    use std::cell::Cell;

    fn site() -> SiteId {
        SiteId::parse("s").expect("site")
    }

    fn clock_at(ms: u64) -> ManualClock {
        let clock = ManualClock::default();
        clock.now.set(ms);
        clock
    }

    fn visits_at(kv: &dyn KvStore, ids: &CountingIds, ms: u64, n: u32) {
        let clock = clock_at(ms);
        for _ in 0..n {
            record_visit(kv, ids, &clock, &site()).expect("visit");
        }
    }

    fn fold_at(kv: &MemoryKv, ms: u64) -> Settled {
        let settled = settle(kv, &site(), ms, true).expect("settle");
        kv.delete_many(&settled.to_delete);
        settled
    }

    #[test]
    fn a_visit_is_one_write_of_its_own_key() {
        let kv = MemoryKv::default();
        let ids = CountingIds::default();
        visits_at(&kv, &ids, 10_000, 3);
        assert_eq!(kv.len(), 3);
        assert!(kv
            .keys()
            .iter()
            .all(|k| k.starts_with("site/s/v/0000000010000/")));
        assert_eq!(settle(&kv, &site(), 10_000, false).map(|s| s.total), Ok(3));
    }

    #[test]
    fn folds_move_finished_seconds_into_the_tally_and_the_total_never_changes() {
        let kv = MemoryKv::default();
        let ids = CountingIds::default();
        for second in 0..10u64 {
            visits_at(&kv, &ids, 100_000 + second * 1000, 7);
        }
        // Visits up to 107.5 s are folded at 109.5 s; those at 108 s and 109 s stay pending.
        let settled = fold_at(&kv, 109_500);
        assert!(settled.folded);
        assert_eq!(settled.total, 70);
        assert_eq!(
            kv.lookup("total/s/tally").expect("lookup").map(|e| e.value),
            Some(b"56 107500".to_vec())
        );
        assert_eq!(kv.len(), 1 + 14, "the tally and two seconds of visits");
        let settled = fold_at(&kv, 120_000);
        assert_eq!((settled.total, kv.len()), (70, 1));
        // Nothing left to fold: the total stays.
        assert_eq!(fold_at(&kv, 125_000).total, 70);
    }

    /// A POP whose read of the tally is stale: it sees none yet.
    struct StaleTally<'a>(&'a MemoryKv);

    impl KvStore for StaleTally<'_> {
        fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
            if key.ends_with("/tally") {
                return Ok(None);
            }
            self.0.lookup(key)
        }
        fn insert(&self, k: &str, v: &[u8], ttl: Option<u32>, m: WriteMode) -> Result<(), KvError> {
            self.0.insert(k, v, ttl, m)
        }
        fn delete(&self, key: &str) -> Result<(), KvError> {
            self.0.delete(key)
        }
        fn list(
            &self,
            prefix: &str,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<ListPage, KvError> {
            self.0.list(prefix, cursor, limit)
        }
    }

    #[test]
    fn two_folds_of_the_same_tally_count_once() {
        let kv = MemoryKv::default();
        let ids = CountingIds::default();
        visits_at(&kv, &ids, 100_000, 5);
        let first = settle(&kv, &site(), 110_000, true).expect("settle");
        // A second folder read the tally before the first wrote it: its write must lose.
        let second = settle(&StaleTally(&kv), &site(), 110_000, true).expect("settle");
        assert!(first.folded);
        assert!(!second.folded);
        assert_eq!((first.total, second.total), (5, 5));
        assert_eq!(
            kv.lookup("total/s/tally").expect("lookup").map(|e| e.value),
            Some(b"5 108000".to_vec())
        );
    }

    /// Deletes that fail: the keys stay, as a failed delete leaves them in production.
    struct KeepingKeys(MemoryKv);

    impl KvStore for KeepingKeys {
        fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
            self.0.lookup(key)
        }
        fn insert(&self, k: &str, v: &[u8], ttl: Option<u32>, m: WriteMode) -> Result<(), KvError> {
            self.0.insert(k, v, ttl, m)
        }
        fn delete(&self, _key: &str) -> Result<(), KvError> {
            Err(KvError::Other("down".into()))
        }
        fn list(
            &self,
            prefix: &str,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<ListPage, KvError> {
            self.0.list(prefix, cursor, limit)
        }
    }

    #[test]
    fn visit_keys_left_behind_after_a_fold_never_count_twice() {
        let kv = KeepingKeys(MemoryKv::default());
        let ids = CountingIds::default();
        visits_at(&kv, &ids, 100_000, 4);
        for now in [110_000, 111_000, 150_000] {
            let settled = settle(&kv, &site(), now, true).expect("settle");
            assert!(kv.delete_many(&settled.to_delete).len() == settled.to_delete.len());
            assert_eq!(settled.total, 4, "at {now}");
        }
    }

    #[test]
    fn reset_and_seed_replace_the_total_and_later_visits_add_to_it() {
        let kv = MemoryKv::default();
        let ids = CountingIds::default();
        visits_at(&kv, &ids, 100_000, 20);
        fold_at(&kv, 110_000);
        set(&kv, &clock_at(120_000), &site(), 5000).expect("seed");
        assert_eq!(
            settle(&kv, &site(), 120_000, false).map(|s| s.total),
            Ok(5000)
        );
        visits_at(&kv, &ids, 122_000, 1);
        assert_eq!(fold_at(&kv, 130_000).total, 5001);
        set(&kv, &clock_at(140_000), &site(), 0).expect("reset");
        assert_eq!(settle(&kv, &site(), 140_000, false).map(|s| s.total), Ok(0));
    }

    #[test]
    fn a_reset_drops_the_visits_before_it_and_counts_those_after_it() {
        let kv = MemoryKv::default();
        let ids = CountingIds::default();
        visits_at(&kv, &ids, 199_900, 1);
        visits_at(&kv, &ids, 200_050, 1); // a moment before the reset: dropped
        set(&kv, &clock_at(200_100), &site(), 0).expect("reset");
        visits_at(&kv, &ids, 200_101, 1); // a moment after it: counts
        visits_at(&kv, &ids, 201_200, 1);
        assert_eq!(settle(&kv, &site(), 201_300, false).map(|s| s.total), Ok(2));
        assert_eq!(fold_at(&kv, 210_000).total, 2);
        assert_eq!(kv.len(), 1, "the dropped visit keys are gone too");
    }

    #[test]
    fn an_earlier_versions_shards_count_until_the_first_fold_takes_them_in() {
        let kv = MemoryKv::default();
        let ids = CountingIds::default();
        for (shard, n) in [("00", "7"), ("05", "3")] {
            kv.insert(
                &format!("total/s/{shard}"),
                n.as_bytes(),
                None,
                WriteMode::Overwrite,
            )
            .expect("shard");
        }
        assert_eq!(
            settle(&kv, &site(), 100_000, false).map(|s| s.total),
            Ok(10)
        );
        visits_at(&kv, &ids, 100_000, 2);
        assert_eq!(fold_at(&kv, 110_000).total, 12);
        assert_eq!(kv.keys(), vec!["total/s/tally".to_string()]);
        assert_eq!(fold_at(&kv, 120_000).total, 12);
    }

    /// A store that refuses the next `fail` writes with `error`.
    struct Refusing {
        inner: MemoryKv,
        fail: Cell<u32>,
        error: KvError,
    }

    impl KvStore for Refusing {
        fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
            self.inner.lookup(key)
        }
        fn insert(&self, k: &str, v: &[u8], ttl: Option<u32>, m: WriteMode) -> Result<(), KvError> {
            if self.fail.get() > 0 {
                self.fail.set(self.fail.get() - 1);
                return Err(self.error.clone());
            }
            self.inner.insert(k, v, ttl, m)
        }
        fn delete(&self, key: &str) -> Result<(), KvError> {
            self.inner.delete(key)
        }
        fn list(
            &self,
            prefix: &str,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<ListPage, KvError> {
            self.inner.list(prefix, cursor, limit)
        }
    }

    #[test]
    fn refused_visits_are_retried_then_given_up_cleanly() {
        let ids = CountingIds::default();
        let clock = clock_at(1000);
        let kv = Refusing {
            inner: MemoryKv::default(),
            fail: Cell::new(3),
            error: KvError::TooManyRequests,
        };
        assert_eq!(record_visit(&kv, &ids, &clock, &site()), Ok(4));
        assert!(clock.now_ms() > 1000, "retries paused");
        let kv = Refusing {
            inner: MemoryKv::default(),
            fail: Cell::new(u32::MAX),
            error: KvError::PreconditionFailed,
        };
        assert_eq!(
            record_visit(&kv, &ids, &clock, &site()),
            Err(TotalError::GaveUp {
                attempts: MAX_ATTEMPTS
            })
        );
        let kv = Refusing {
            inner: MemoryKv::default(),
            fail: Cell::new(1),
            error: KvError::Other("down".into()),
        };
        assert_eq!(
            record_visit(&kv, &ids, &clock, &site()),
            Err(TotalError::Store(KvError::Other("down".into())))
        );
    }

    #[test]
    fn a_corrupt_tally_is_an_error_not_a_zero() {
        let kv = MemoryKv::default();
        kv.insert("total/s/tally", b"abc", None, WriteMode::Overwrite)
            .expect("insert");
        assert!(matches!(
            settle(&kv, &site(), 0, false),
            Err(TotalError::Corrupt { .. })
        ));
    }
}
