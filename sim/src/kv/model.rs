//! The store itself: every key's versions, what each POP sees of them and when, and what
//! every operation cost.

use std::collections::BTreeMap;
use std::ops::Bound;

use liveuser_edge::platform::kv::{Entry, KvError, ListPage, WriteMode};

use crate::clock::{EPOCH_US, MIN};
use crate::params::Params;
use crate::rng::mix;

use crate::ops::Ops;

use super::key::Key;

#[derive(Debug, Clone)]
struct Version {
    generation: u64,
    committed_us: u64,
    value: Vec<u8>,
    /// When the key expires (KV TTL), if it has a TTL.
    expires_us: Option<u64>,
    deleted: bool,
}

#[derive(Debug, Default)]
struct History {
    /// Oldest first; older versions are kept only while some POP may still see them.
    versions: Vec<Version>,
    last_write_us: Option<u64>,
    /// What a listing needs of the newest version, kept beside the key (a listing of a
    /// million keys reads this rather than follow each key's versions).
    newest: Newest,
}

#[derive(Debug, Default, Clone, Copy)]
struct Newest {
    committed_us: u64,
    expires_us: Option<u64>,
    deleted: bool,
}

/// The store itself.
pub struct KvModel {
    keys: BTreeMap<Key, History>,
    next_generation: u64,
    lag_seed: u64,
    lag_max_us: u64,
    lookup_lag_max_us: u64,
    ops_per_s: u64,
    /// (second, operations in it) of the store as a whole.
    this_second: (u64, u64),
    expired_listed_us: u64,
    forget_expired_us: u64,
    key_write_interval_us: u64,
    default_page: usize,
    max_page: usize,
    /// Operations per simulated minute on the measured site's keys (every key names its site
    /// second: `site/<site>/…`, `claim/<site>/…`, `snapshot/<site>/…`); other sites' count
    /// against the store-wide rate only.
    pub per_minute: Vec<Ops>,
    /// The measured site (`None`: every key).
    pub focus: Option<String>,
}

impl KvModel {
    pub fn new(params: &Params) -> KvModel {
        KvModel {
            keys: BTreeMap::new(),
            next_generation: 1,
            lag_seed: mix(params.seed ^ 0x6b76_6c61_6773),
            lag_max_us: params.kv_lag_max_ms * 1000,
            lookup_lag_max_us: params.kv_lookup_lag_max_ms * 1000,
            ops_per_s: params.kv_store_ops_per_s,
            this_second: (0, 0),
            expired_listed_us: params.kv_expired_listed_ms * 1000,
            forget_expired_us: params.kv_forget_expired_ms * 1000,
            key_write_interval_us: params.kv_key_write_interval_ms * 1000,
            default_page: params.kv_default_page,
            max_page: params.kv_max_page,
            per_minute: Vec::new(),
            focus: None,
        }
    }

    /// Forgets every key (a finished run keeps only its figures).
    pub fn forget_keys(&mut self) {
        self.keys = BTreeMap::new();
    }

    /// The store, counting operations on `site`'s keys only.
    pub fn measuring(mut self, site: &str) -> KvModel {
        self.focus = Some(site.to_string());
        self
    }

    fn tally(&mut self, at_us: u64, key: &str, f: impl FnOnce(&mut Ops)) {
        if let Some(focus) = &self.focus {
            if key.split('/').nth(1) != Some(focus.as_str()) {
                return;
            }
        }
        let minute = (at_us.saturating_sub(EPOCH_US) / MIN) as usize;
        if self.per_minute.len() <= minute {
            self.per_minute.resize(minute + 1, Ops::default());
        }
        f(&mut self.per_minute[minute]);
    }

    /// How long version `generation` takes to reach `pop`: different for every write and POP,
    /// mostly short, at most `max_us`.
    fn lag_us(&self, pop: usize, generation: u64, max_us: u64) -> u64 {
        let h = mix(self.lag_seed ^ generation.wrapping_mul(0x9E37_79B9) ^ (pop as u64) << 48);
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        (max_us as f64 * u * u * u) as u64
    }

    /// The version `pop` sees at `t` in a listing, if any.
    fn seen<'h>(&self, h: &'h History, pop: usize, t: u64) -> Option<&'h Version> {
        self.seen_with(h, pop, t, self.lag_max_us)
    }

    fn seen_with<'h>(
        &self,
        h: &'h History,
        pop: usize,
        t: u64,
        max_us: u64,
    ) -> Option<&'h Version> {
        // The newest version, once every POP can see it, is what each sees (most keys, most
        // of the time: no per-POP lag to work out).
        match h.versions.last() {
            Some(newest) if newest.committed_us + max_us <= t => Some(newest),
            _ => h
                .versions
                .iter()
                .rev()
                .find(|v| v.committed_us + self.lag_us(pop, v.generation, max_us) <= t),
        }
    }

    /// Counts one call against the store-wide rate: false when it is over (429).
    pub fn admit(&mut self, t: u64) -> bool {
        let second = t / 1_000_000;
        if self.this_second.0 != second {
            self.this_second = (second, 0);
        }
        self.this_second.1 += 1;
        self.this_second.1 <= self.ops_per_s
    }

    /// Whether the primary store holds a live value for the key at `t`.
    fn live_at_primary(h: &History, t: u64) -> Option<&Version> {
        h.versions
            .last()
            .filter(|v| !v.deleted && v.expires_us.is_none_or(|e| e > t))
    }

    pub fn lookup(&mut self, pop: usize, t: u64, key: &str) -> Option<Entry> {
        self.tally(t, key, |o| o.lookups += 1);
        let h = self.keys.get(key)?;
        let v = self.seen_with(h, pop, t, self.lookup_lag_max_us)?;
        if v.deleted || v.expires_us.is_some_and(|e| e <= t) {
            return None;
        }
        Some(Entry {
            value: v.value.clone(),
            generation: v.generation,
        })
    }

    fn rate_limited(&self, h: Option<&History>, t: u64) -> bool {
        h.and_then(|h| h.last_write_us)
            .is_some_and(|last| t < last + self.key_write_interval_us)
    }

    pub fn insert(
        &mut self,
        t: u64,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        let existing = self.keys.get(key);
        if self.rate_limited(existing, t) {
            self.tally(t, key, |o| {
                o.inserts += 1;
                o.rate_limited += 1
            });
            return Err(KvError::TooManyRequests);
        }
        let live = existing.and_then(|h| Self::live_at_primary(h, t));
        let allowed = match mode {
            WriteMode::Overwrite => true,
            WriteMode::AddOnly => live.is_none(),
            WriteMode::IfGeneration(g) => live.is_some_and(|v| v.generation == g),
        };
        if !allowed {
            self.tally(t, key, |o| {
                o.inserts += 1;
                o.insert_conflicts += 1
            });
            return Err(KvError::PreconditionFailed);
        }
        self.tally(t, key, |o| o.inserts += 1);
        let version = Version {
            generation: self.next_generation,
            committed_us: t,
            value: value.to_vec(),
            expires_us: ttl_secs.map(|s| t + u64::from(s) * 1_000_000),
            deleted: false,
        };
        self.next_generation += 1;
        self.commit(key, version, t);
        Ok(())
    }

    pub fn delete(&mut self, t: u64, key: &str) -> Result<(), KvError> {
        self.tally(t, key, |o| o.deletes += 1);
        let Some(h) = self.keys.get(key) else {
            self.tally(t, key, |o| o.deletes_of_gone += 1);
            return Ok(());
        };
        if h.versions.last().is_some_and(|v| v.deleted) {
            self.tally(t, key, |o| o.deletes_of_gone += 1);
            return Ok(());
        }
        if self.rate_limited(Some(h), t) {
            self.tally(t, key, |o| o.rate_limited += 1);
            return Err(KvError::TooManyRequests);
        }
        let version = Version {
            generation: self.next_generation,
            committed_us: t,
            value: Vec::new(),
            expires_us: None,
            deleted: true,
        };
        self.next_generation += 1;
        self.commit(key, version, t);
        Ok(())
    }

    fn commit(&mut self, key: &str, version: Version, t: u64) {
        let lag_max = self.lag_max_us.max(self.lookup_lag_max_us);
        let h = self.keys.entry(Key::new(key)).or_default();
        h.last_write_us = Some(t);
        h.newest = Newest {
            committed_us: version.committed_us,
            expires_us: version.expires_us,
            deleted: version.deleted,
        };
        h.versions.push(version);
        // Versions older than one every POP already sees are unreachable.
        if let Some(i) = h
            .versions
            .iter()
            .rposition(|v| v.committed_us + lag_max <= t)
        {
            h.versions.drain(..i);
        }
    }

    /// One page of keys under `prefix` after `cursor`, as `pop` sees them at `t`.
    pub fn list(
        &mut self,
        pop: usize,
        t: u64,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> ListPage {
        let limit = limit.unwrap_or(self.default_page).clamp(1, self.max_page);
        let start = match cursor {
            Some(c) if c >= prefix => Bound::Excluded(c),
            _ => Bound::Included(prefix),
        };
        // Every key under the prefix sorts before its successor: no per-key prefix test.
        let successor = prefix_successor(prefix);
        let end = successor
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        let mut keys = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        let mut expired = 0;
        // A cursor at or past the end leaves nothing to list (and no range to ask for).
        let past_end = matches!((cursor, &successor), (Some(c), Some(e)) if c >= e.as_str());
        let range = if past_end {
            self.keys
                .range::<str, _>((Bound::Included(""), Bound::Excluded("")))
        } else {
            self.keys.range::<str, _>((start, end))
        };
        for (key, h) in range {
            let key = key.as_str();
            if successor.is_none() && !key.starts_with(prefix) {
                break;
            }
            // Once every POP sees the newest version, it is what this one sees.
            let (deleted, expires_us) = if h.newest.committed_us + self.lag_max_us <= t {
                (h.newest.deleted, h.newest.expires_us)
            } else {
                let Some(v) = self.seen(h, pop, t) else {
                    continue;
                };
                (v.deleted, v.expires_us)
            };
            if deleted || expires_us.is_some_and(|e| e + self.expired_listed_us <= t) {
                continue;
            }
            if keys.len() == limit {
                more = true;
                break;
            }
            expired += u64::from(expires_us.is_some_and(|e| e <= t));
            keys.push(key.to_string());
        }
        let listed = keys.len() as u64;
        // A presence listing (`site/<site>/p/…`) read past its first page.
        let walked = cursor.is_some() && prefix.split('/').nth(2) == Some("p");
        self.tally(t, prefix, |o| {
            o.list_pages += 1;
            o.walked_pages += u64::from(walked);
            o.keys_listed += listed;
            o.expired_listed += expired;
        });
        let next_cursor = if more { keys.last().cloned() } else { None };
        ListPage { keys, next_cursor }
    }

    /// Forgets what no POP can see any more: deletes every POP has seen, and expired keys
    /// past the time they may still be listed.
    pub fn collect_garbage(&mut self, t: u64) {
        let lag_max = self.lag_max_us.max(self.lookup_lag_max_us);
        let listed = self.expired_listed_us.min(self.forget_expired_us);
        self.keys.retain(|_, h| match h.versions.last() {
            Some(v) if v.deleted => v.committed_us + lag_max > t,
            Some(v) => v.expires_us.is_none_or(|e| e + listed > t),
            None => false,
        });
    }

    /// Keys under `prefix` the primary store would still list at `t` (live or expired but
    /// not yet removed), grouped by the path segment after the prefix, with the next segment of
    /// each (for presence: per id, the expiries of its keys).
    pub fn listed_by_segment(&self, prefix: &str, t: u64) -> BTreeMap<String, Vec<String>> {
        let mut groups = BTreeMap::new();
        for (key, h) in self
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        {
            let key = key.as_str();
            if !key.starts_with(prefix) {
                break;
            }
            let Some(v) = h.versions.last() else { continue };
            if v.deleted
                || v.expires_us
                    .is_some_and(|e| e + self.expired_listed_us <= t)
            {
                continue;
            }
            let rest = &key[prefix.len()..];
            let mut segments = rest.split('/');
            let segment = segments.next().unwrap_or(rest);
            let next = segments.next().unwrap_or("").to_string();
            groups
                .entry(segment.to_string())
                .or_insert_with(Vec::new)
                .push(next);
        }
        groups
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// The least string greater than every string that starts with `prefix` (`None` when there
/// is none: a prefix of only U+10FFFF characters, or empty).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1).or_else(|| char::from_u32(0xE000)) {
            if next > last {
                chars.push(next);
                return Some(chars.into_iter().collect());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{MS, SEC};

    fn model() -> KvModel {
        KvModel::new(&Params::default())
    }

    #[test]
    fn a_write_reaches_each_pop_within_the_lag() {
        let mut kv = model();
        kv.insert(0, "k", b"v", None, WriteMode::Overwrite)
            .expect("insert");
        let p = Params::default();
        let (list_lag, lookup_lag) = (p.kv_lag_max_ms * MS, p.kv_lookup_lag_max_ms * MS);
        let seen_at_once = (0..50).filter(|&p| kv.lookup(p, 0, "k").is_some()).count();
        assert!(seen_at_once < 50, "some POPs lag");
        let listed = |kv: &mut KvModel, pop, t| !kv.list(pop, t, "k", None, None).keys.is_empty();
        assert!((0..50).all(|p| listed(&mut kv, p, list_lag)));
        // Lookups read a POP's eventual copy: some are still stale when every listing is not.
        let stale = (0..50)
            .filter(|&p| kv.lookup(p, list_lag, "k").is_none())
            .count();
        assert!(stale > 0, "lookups lag longer than listings");
        assert!((0..50).all(|p| kv.lookup(p, lookup_lag, "k").is_some()));
    }

    #[test]
    fn a_listing_holds_the_keys_under_its_prefix_and_no_other() {
        let mut kv = model();
        for k in ["a", "a/", "a/x", "a/\u{10FFFF}", "a0", "a/x/y", "b"] {
            kv.insert(0, k, b"v", None, WriteMode::Overwrite)
                .expect("insert");
        }
        let t = 10 * SEC;
        let listed = |kv: &mut KvModel, prefix: &str| kv.list(0, t, prefix, None, None).keys;
        assert_eq!(
            listed(&mut kv, "a/"),
            ["a/", "a/x", "a/x/y", "a/\u{10FFFF}"]
        );
        assert_eq!(listed(&mut kv, "a/x"), ["a/x", "a/x/y"]);
        assert_eq!(listed(&mut kv, "").len(), 7);
        let past = kv.list(0, t, "a/", Some("a0"), None);
        assert!(
            past.keys.is_empty() && past.next_cursor.is_none(),
            "a cursor past the end"
        );
        assert_eq!(prefix_successor("a/"), Some("a0".to_string()));
        assert_eq!(prefix_successor("a\u{10FFFF}"), Some("b".to_string()));
        assert_eq!(prefix_successor("\u{D7FF}"), Some("\u{E000}".to_string()));
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn the_store_refuses_calls_beyond_its_rate_in_any_second() {
        let mut kv = KvModel::new(&Params {
            kv_store_ops_per_s: 3,
            ..Params::default()
        });
        let admitted = (0..5).filter(|i| kv.admit(SEC + i * 1000)).count();
        assert_eq!(admitted, 3);
        assert!(kv.admit(2 * SEC), "a new second starts afresh");
    }

    #[test]
    fn conditional_writes_are_decided_at_the_primary() {
        let mut kv = model();
        kv.insert(0, "k", b"1", None, WriteMode::AddOnly)
            .expect("first add");
        assert_eq!(
            kv.insert(2 * SEC, "k", b"2", None, WriteMode::AddOnly),
            Err(KvError::PreconditionFailed)
        );
        let g = kv.lookup(0, SEC, "k").expect("entry").generation;
        kv.insert(2 * SEC, "k", b"2", None, WriteMode::IfGeneration(g))
            .expect("generation match");
        assert_eq!(
            kv.insert(4 * SEC, "k", b"3", None, WriteMode::IfGeneration(g)),
            Err(KvError::PreconditionFailed)
        );
    }

    #[test]
    fn a_key_takes_one_write_a_second() {
        let mut kv = model();
        kv.insert(0, "k", b"1", None, WriteMode::Overwrite)
            .expect("insert");
        assert_eq!(
            kv.insert(500 * MS, "k", b"2", None, WriteMode::Overwrite),
            Err(KvError::TooManyRequests)
        );
        kv.insert(SEC, "k", b"2", None, WriteMode::Overwrite)
            .expect("a second later");
    }

    #[test]
    fn expired_keys_are_not_found_but_stay_listed() {
        let mut kv = model();
        kv.insert(0, "p/a", b"", Some(60), WriteMode::Overwrite)
            .expect("insert");
        let t = 61 * SEC;
        assert!(kv.lookup(0, t, "p/a").is_none());
        assert_eq!(
            kv.list(0, t, "p/", None, None).keys,
            vec!["p/a".to_string()]
        );
        let gone = 60 * SEC + Params::default().kv_expired_listed_ms * MS;
        assert!(kv.list(0, gone, "p/", None, None).keys.is_empty());
        kv.collect_garbage(gone);
        assert_eq!(kv.key_count(), 0);
    }

    #[test]
    fn pages_hold_the_limit_and_follow_the_cursor() {
        let mut kv = model();
        for i in 0..250 {
            kv.insert(0, &format!("p/{i:03}"), b"", None, WriteMode::Overwrite)
                .expect("insert");
        }
        let t = SEC;
        let first = kv.list(0, t, "p/", None, None);
        assert_eq!(first.keys.len(), 100);
        let rest = kv.list(0, t, "p/", first.next_cursor.as_deref(), Some(5000));
        assert_eq!(rest.keys.len(), 150);
        assert_eq!(rest.next_cursor, None);
        assert_eq!(kv.list(0, t, "q/", None, None).keys.len(), 0);
    }
}
