//! Who is online: one KV key per live connection and heartbeat, with the expiry in its name.
//!
//! Key: `site/<site>/p/<presence id>/<expiry ms>`, or `…/<expiry ms>/<page id>` for a reader
//! counted on one page of the site too (see `page`), written with a KV TTL to match. Visits
//! live under `site/<site>/v/`, beside, never inside, this prefix: a count lists presence keys
//! only. The page is in the same key, so a page reader's heartbeat is still one write.
//!
//! Why the expiry is in the name: production KV may keep (and list) an expired key for up to a
//! day, so the count must not depend on expired keys vanishing. Counting lists the site's keys
//! and counts the distinct presence ids that have at least one key whose expiry is still ahead.
//!
//! Why a new key per heartbeat instead of rewriting one: a listing shows names only, so the
//! expiry must be readable from the name. Each refresh writes the new key and deletes the keys
//! older than the one it replaces, so a connection has at most two keys alive: the newest, and
//! the one before it, kept for one more interval because another POP may see the delete of an
//! old key before the write of its successor (each change reaches each POP after its own lag),
//! and must never see the connection with no key at all. The lease in connection meta names
//! them, so a close deletes exactly those keys without a listing; keys of connections that
//! vanished without any event are deleted by the sweeps that find them expired.
//! Heartbeats faster than half an interval write nothing, which bounds a client's write rate.

use crate::platform::clock::Clock;
use crate::platform::config::Config;
use crate::platform::kv::{list_all, KvError, KvStore, WriteMode, KEY_WRITE_INTERVAL_MS};
use crate::wire::site::SiteId;

/// The most keys a lease names: two alive, plus old ones whose delete failed (they are retried
/// on the next refresh; past this many, the oldest are left to the sweeps).
const MAX_LEASE: usize = 4;

/// A connection's presence: its random id and the expiries of its keys that may be alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub expiries_ms: Vec<u64>,
    /// The page id the connection is counted on, if any (every key of the lease names it).
    pub page: Option<String>,
}

impl Lease {
    /// The lease as stored in connection meta: expiries joined by commas.
    pub fn expiries_meta(&self) -> String {
        self.expiries_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads a lease back from meta. Ids are checked to be short lowercase hex, as
    /// [`new_id_from`] makes them; anything else is refused (`None`).
    pub fn from_meta(id: &str, expiries: &str) -> Option<Lease> {
        if !is_presence_id(id) {
            return None;
        }
        let expiries_ms = expiries
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        if expiries_ms.len() > MAX_LEASE {
            return None;
        }
        Some(Lease {
            id: id.to_string(),
            expiries_ms,
            page: None,
        })
    }

    /// The lease counted on `page` (a page id, as `page::id` makes them).
    pub fn on_page(mut self, page: Option<String>) -> Lease {
        self.page = page.filter(|p| crate::count::page::is_page_id(p));
        self
    }

    /// The key of this lease's heartbeat that expires at `expiry_ms`.
    pub fn key(&self, site: &SiteId, expiry_ms: u64) -> String {
        key_on(site, &self.id, expiry_ms, self.page.as_deref())
    }

    /// When the connection's presence runs out, if it has any.
    pub fn newest_expiry(&self) -> Option<u64> {
        self.expiries_ms.iter().copied().max()
    }
}

/// A presence id from 128 random bits: 32 lowercase hex characters.
pub fn new_id_from(random: [u64; 2]) -> String {
    format!("{:016x}{:016x}", random[0], random[1])
}

/// Whether `id` is a presence id as this service makes them (32 lowercase hex digits).
pub fn is_presence_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The listing prefix of one site's presence keys.
pub fn site_prefix(site: &SiteId) -> String {
    format!("{}p/", site.listing_prefix())
}

/// The key of one heartbeat of one connection.
pub fn key(site: &SiteId, id: &str, expiry_ms: u64) -> String {
    key_on(site, id, expiry_ms, None)
}

/// The key of one heartbeat of one connection counted on `page` too.
pub fn key_on(site: &SiteId, id: &str, expiry_ms: u64, page: Option<&str>) -> String {
    match page {
        Some(page) => format!("{}{id}/{expiry_ms}/{page}", site_prefix(site)),
        None => format!("{}{id}/{expiry_ms}", site_prefix(site)),
    }
}

/// Registers a new connection: one KV write.
pub fn join(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    id: String,
    now_ms: u64,
) -> Result<Lease, KvError> {
    join_on(kv, config, site, id, None, now_ms)
}

/// [`join`], counted on `page` (a page id) too: still one KV write.
pub fn join_on(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    id: String,
    page: Option<String>,
    now_ms: u64,
) -> Result<Lease, KvError> {
    let lease = Lease {
        id,
        expiries_ms: Vec::new(),
        page,
    };
    let expiry = now_ms + u64::from(config.presence_ttl_secs) * 1000;
    write(kv, config, &lease.key(site, expiry))?;
    Ok(Lease {
        expiries_ms: vec![expiry],
        ..lease
    })
}

/// Moves a connection to another page (or off pages): writes its new key, then deletes its
/// old ones (a page move is a reader's navigation, not a heartbeat: two operations are fine).
pub fn move_to(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
    page: Option<String>,
    now_ms: u64,
) -> Result<Lease, KvError> {
    let moved = join_on(kv, config, site, lease.id.clone(), page, now_ms)?;
    let old: Vec<String> = lease
        .expiries_ms
        .iter()
        .map(|e| lease.key(site, *e))
        .collect();
    // An old key whose delete fails expires within the TTL; a sweep deletes it then.
    let _ = kv.delete_many(&old);
    Ok(moved)
}

/// Extends a connection's presence on a heartbeat: one KV write and the delete of the key
/// before the newest (none at all when the newest key was written less than half an interval
/// ago). Returns the updated lease and whether anything was written.
pub fn refresh(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
    now_ms: u64,
) -> Result<(Lease, bool), KvError> {
    let ttl_ms = u64::from(config.presence_ttl_secs) * 1000;
    let half_interval_ms = u64::from(config.heartbeat_interval_secs) * 500;
    // A lease with no keys has left (a close, or the service closed it): a late heartbeat
    // must not bring it back.
    let Some(newest) = lease.newest_expiry() else {
        return Ok((lease.clone(), false));
    };
    let newest = Some(newest);
    let fresh_enough = newest.is_some_and(|n| n > now_ms && n + half_interval_ms > now_ms + ttl_ms);
    if fresh_enough {
        return Ok((lease.clone(), false));
    }
    // Everything but the newest key goes: the newest stays until the next refresh (see the
    // module's notes). A failed delete stays in the lease and is tried again next time.
    let older: Vec<String> = lease
        .expiries_ms
        .iter()
        .filter(|e| Some(**e) != newest)
        .map(|e| lease.key(site, *e))
        .collect();
    let failed = kv.delete_many(&older);
    let expiry = now_ms + ttl_ms;
    write(kv, config, &lease.key(site, expiry))?;
    let mut expiries_ms: Vec<u64> = lease
        .expiries_ms
        .iter()
        .copied()
        .filter(|e| Some(*e) == newest || failed.iter().any(|(k, _)| *k == lease.key(site, *e)))
        .collect();
    expiries_ms.sort_unstable();
    expiries_ms.push(expiry);
    let excess = expiries_ms.len().saturating_sub(MAX_LEASE);
    expiries_ms.drain(..excess);
    Ok((
        Lease {
            id: lease.id.clone(),
            expiries_ms,
            page: lease.page.clone(),
        },
        true,
    ))
}

/// Removes a connection at once: deletes every key of its lease (no listing). Keys already
/// past their expiry are deleted too, so production does not keep them for a day.
///
/// A key takes about one write a second, and a delete is a write: a connection that closes
/// within a second of its last refresh has its newest key refused (429). That delete is tried
/// again once the second has passed; otherwise the key would count for a whole TTL.
pub fn leave(
    kv: &dyn KvStore,
    clock: &dyn Clock,
    site: &SiteId,
    lease: &Lease,
) -> Result<(), KvError> {
    let keys: Vec<String> = lease
        .expiries_ms
        .iter()
        .map(|e| lease.key(site, *e))
        .collect();
    let mut failed = kv.delete_many(&keys);
    if failed.iter().any(|(_, e)| *e == KvError::TooManyRequests) {
        clock.sleep_until(clock.now_ms() + KEY_WRITE_INTERVAL_MS);
        let again: Vec<String> = failed.into_iter().map(|(k, _)| k).collect();
        failed = kv.delete_many(&again);
    }
    match failed.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// What one listing of a site's presence keys found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    /// Distinct connections with a key that has not expired: the count.
    pub live: u64,
    /// Keys the listing returned.
    pub keys: u64,
    /// Expired keys nobody else will delete: every key of a connection gone without an event
    /// (production would list them for up to a day), and a live connection's keys expired for
    /// longer than a TTL (its own refreshes delete its previous key well within that: older
    /// ones fell out of a full lease, or a delete failed on a page move, or a tab handed its
    /// presence over). An expired key never counts, so deleting it is always safe.
    pub expired: Vec<String>,
    /// When the newest connection still on its first key joined: a sweep that finds one
    /// newer than the last publish publishes even if the count did not change (a join and a
    /// leave in one slot), so the new page gets its count.
    pub newest_join_ms: Option<u64>,
    /// Live connections per page id, for those counted on a page (each on the page of its
    /// newest key).
    pub pages: std::collections::BTreeMap<String, u64>,
}

/// Lists the site's presence keys (every page, full pages) and counts the connections alive.
pub fn census(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    now_ms: u64,
) -> Result<Census, KvError> {
    let ttl_ms = u64::from(config.presence_ttl_secs) * 1000;
    Ok(census_of(
        &list_all(kv, &site_prefix(site))?,
        site,
        now_ms,
        ttl_ms,
    ))
}

/// Counts the connections alive among listed keys (other keys are passed over). `ttl_ms`
/// dates each key's write from its expiry.
pub fn census_of(keys: &[String], site: &SiteId, now_ms: u64, ttl_ms: u64) -> Census {
    let prefix = site_prefix(site);
    // Ids are 128-bit numbers in hex: sorting numbers, not strings, keeps a count of tens of
    // thousands of keys cheap.
    let mut keys_by_id: Vec<(u128, u64, &String, Option<&str>)> = Vec::with_capacity(keys.len());
    let mut listed: u64 = 0;
    for k in keys {
        let Some(rest) = k.strip_prefix(&prefix) else {
            continue;
        };
        listed += 1;
        let Some((id, expiry, page)) = parse_key(rest) else {
            continue;
        };
        if let Ok(id) = u128::from_str_radix(id, 16) {
            keys_by_id.push((id, expiry, k, page));
        }
    }
    keys_by_id.sort_unstable();
    let mut census = Census {
        keys: listed,
        ..Census::default()
    };
    for group in keys_by_id.chunk_by(|a, b| a.0 == b.0) {
        // Sorted by expiry within the id: the last key is the newest.
        let (newest, page) = group.last().map_or((0, None), |(_, e, _, p)| (*e, *p));
        // Keys sorted by expiry. A live connection's recently expired key is its own next
        // refresh's to delete; one expired a TTL ago is left behind.
        let cut = if newest > now_ms {
            now_ms.saturating_sub(ttl_ms)
        } else {
            now_ms
        };
        let gone = group.partition_point(|(_, e, _, _)| *e <= cut);
        census
            .expired
            .extend(group[..gone].iter().map(|(_, _, k, _)| (*k).clone()));
        if newest > now_ms {
            census.live += 1;
            if let Some(page) = page {
                *census.pages.entry(page.to_string()).or_default() += 1;
            }
            // A connection's first key stands alone until its first refresh adds a second.
            if group.len() == 1 {
                let written = newest.saturating_sub(ttl_ms);
                census.newest_join_ms = census.newest_join_ms.max(Some(written));
            }
        }
    }
    census
}

/// The number of distinct connections with a key that has not expired.
pub fn count(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    now_ms: u64,
) -> Result<u64, KvError> {
    census(kv, config, site, now_ms).map(|c| c.live)
}

/// Splits `<id>/<expiry>[/<page id>]`; foreign or malformed keys are skipped.
fn parse_key(rest: &str) -> Option<(&str, u64, Option<&str>)> {
    let (id, rest) = rest.split_once('/')?;
    if !is_presence_id(id) {
        return None;
    }
    let (expiry, page) = match rest.split_once('/') {
        Some((expiry, page)) if crate::count::page::is_page_id(page) => (expiry, Some(page)),
        Some(_) => return None,
        None => (rest, None),
    };
    Some((id, expiry.parse().ok()?, page))
}

fn write(kv: &dyn KvStore, config: &Config, key: &str) -> Result<(), KvError> {
    // The key outlives its expiry by a second at most (KV TTLs are whole seconds); counting
    // uses the expiry in the name, so that second never counts.
    kv.insert(
        key,
        b"",
        Some(config.presence_ttl_secs + 1),
        WriteMode::Overwrite,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kv::CountingKv;
    use crate::platform::testing::{ManualClock, MemoryKv};

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).expect("site")
    }

    fn config() -> Config {
        Config {
            heartbeat_interval_secs: 30,
            presence_ttl_secs: 60,
            ..Config::default()
        }
    }

    fn id(n: u64) -> String {
        new_id_from([n, n])
    }

    #[test]
    fn join_writes_one_key_and_counts() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let lease = join(&kv, &config(), &site("a"), id(1), 1_000).expect("join");
        assert_eq!(lease.expiries_ms, vec![61_000]);
        assert_eq!(kv.counts().insert, 1);
        assert_eq!(count(&kv, &config(), &site("a"), 1_000), Ok(1));
        assert_eq!(count(&kv, &config(), &site("b"), 1_000), Ok(0));
    }

    #[test]
    fn each_connection_counts_once_however_many_keys_it_has() {
        let store = MemoryKv::default();
        let cfg = config();
        let lease = join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        let (lease, wrote) = refresh(&store, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        assert!(wrote);
        assert_eq!(lease.expiries_ms, vec![60_000, 90_000]);
        join(&store, &cfg, &site("a"), id(2), 0).expect("join");
        assert_eq!(count(&store, &config(), &site("a"), 30_000), Ok(2));
    }

    #[test]
    fn a_heartbeat_is_at_most_one_write_and_spam_writes_nothing() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        let mut lease = join(&kv, &cfg, &site("a"), id(1), 0).expect("join");
        for t in [1_000, 5_000, 14_000] {
            let (l, wrote) = refresh(&kv, &cfg, &site("a"), &lease, t).expect("refresh");
            assert!(!wrote, "at {t} ms");
            lease = l;
        }
        let (lease, wrote) = refresh(&kv, &cfg, &site("a"), &lease, 15_000).expect("refresh");
        assert!(wrote);
        assert_eq!(kv.counts().insert, 2);
        // Lived expiries are dropped from the lease as time passes.
        let (lease, _) = refresh(&kv, &cfg, &site("a"), &lease, 61_000).expect("refresh");
        assert_eq!(lease.expiries_ms, vec![75_000, 121_000]);
    }

    #[test]
    fn a_vanished_connection_stops_counting_at_its_expiry_even_if_the_key_lingers() {
        // MemoryKv never drops expired keys, as production may not for hours.
        let store = MemoryKv::default();
        let cfg = config();
        join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        assert_eq!(count(&store, &config(), &site("a"), 59_999), Ok(1));
        assert_eq!(count(&store, &config(), &site("a"), 60_000), Ok(0));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn leave_deletes_every_key_of_the_lease_without_listing() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        let lease = join(&kv, &cfg, &site("a"), id(1), 0).expect("join");
        let (lease, _) = refresh(&kv, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        join(&kv, &cfg, &site("a"), id(2), 0).expect("join");
        leave(&kv, &ManualClock::default(), &site("a"), &lease).expect("leave");
        assert_eq!(kv.counts().list, 0);
        assert_eq!(kv.counts().delete, 2);
        assert_eq!(count(&store, &config(), &site("a"), 30_000), Ok(1));
    }

    #[test]
    fn counting_follows_every_page_and_skips_foreign_keys() {
        let store = MemoryKv::with_page_size(3);
        let cfg = config();
        for n in 0..10 {
            join(&store, &cfg, &site("a"), id(n), 0).expect("join");
        }
        store
            .insert("site/a/p/garbage", b"", None, WriteMode::Overwrite)
            .expect("insert");
        let kv = CountingKv::new(&store);
        assert_eq!(count(&kv, &config(), &site("a"), 1), Ok(10));
        assert_eq!(kv.counts().list, 4);
    }

    #[test]
    fn sites_sharing_a_prefix_do_not_mix() {
        let store = MemoryKv::default();
        join(&store, &config(), &site("ab"), id(1), 0).expect("join");
        assert_eq!(count(&store, &config(), &site("a"), 0), Ok(0));
    }

    #[test]
    fn a_connection_never_has_more_than_two_keys_alive_however_long_it_lives() {
        let store = MemoryKv::default();
        let cfg = config();
        let mut lease = join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        // Six hours of heartbeats, every 30 s.
        for beat in 1..=720u64 {
            let (l, wrote) =
                refresh(&store, &cfg, &site("a"), &lease, beat * 30_000).expect("refresh");
            assert!(wrote);
            lease = l;
            assert!(store.len() <= 2, "{} keys after beat {beat}", store.len());
            assert!(lease.expiries_ms.len() <= 2);
        }
        assert_eq!(count(&store, &config(), &site("a"), 720 * 30_000), Ok(1));
    }

    /// A store whose next `failing` deletes fail with 429.
    struct FailingDeletes {
        inner: MemoryKv,
        failing: std::cell::Cell<u32>,
    }

    impl KvStore for FailingDeletes {
        fn lookup(&self, key: &str) -> Result<Option<crate::platform::kv::Entry>, KvError> {
            self.inner.lookup(key)
        }
        fn insert(&self, k: &str, v: &[u8], ttl: Option<u32>, m: WriteMode) -> Result<(), KvError> {
            self.inner.insert(k, v, ttl, m)
        }
        fn delete(&self, key: &str) -> Result<(), KvError> {
            if self.failing.get() > 0 {
                self.failing.set(self.failing.get() - 1);
                return Err(KvError::TooManyRequests);
            }
            self.inner.delete(key)
        }
        fn list(
            &self,
            prefix: &str,
            cursor: Option<&str>,
            limit: u32,
        ) -> Result<crate::platform::kv::ListPage, KvError> {
            self.inner.list(prefix, cursor, limit)
        }
    }

    #[test]
    fn a_failed_delete_stays_in_the_lease_and_is_retried() {
        let store = FailingDeletes {
            inner: MemoryKv::default(),
            failing: std::cell::Cell::new(u32::MAX),
        };
        let cfg = config();
        let lease = join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        let (lease, _) = refresh(&store, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        let (lease, _) = refresh(&store, &cfg, &site("a"), &lease, 60_000).expect("refresh");
        assert_eq!(lease.expiries_ms, vec![60_000, 90_000, 120_000]);
        store.failing.set(0);
        let (lease, _) = refresh(&store, &cfg, &site("a"), &lease, 90_000).expect("refresh");
        assert_eq!(lease.expiries_ms, vec![120_000, 150_000]);
        assert_eq!(store.inner.len(), 2);
    }

    #[test]
    fn a_close_right_after_a_refresh_waits_out_the_keys_write_limit() {
        let store = FailingDeletes {
            inner: MemoryKv::default(),
            failing: std::cell::Cell::new(1),
        };
        let clock = ManualClock::default();
        clock.now.set(30_500);
        let cfg = config();
        let lease = join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        let (lease, _) = refresh(&store, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        leave(&store, &clock, &site("a"), &lease).expect("deleted on the second try");
        assert_eq!(store.inner.len(), 0);
        assert_eq!(clock.now.get(), 31_500, "waited a second");
    }

    #[test]
    fn a_census_counts_live_connections_and_names_every_expired_key() {
        let store = MemoryKv::default();
        let cfg = config();
        join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        let lease = join(&store, &cfg, &site("a"), id(2), 0).expect("join");
        refresh(&store, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        let census = census(&store, &cfg, &site("a"), 70_000).expect("census");
        assert_eq!(census.live, 1);
        assert_eq!(census.keys, 3);
        // Connection 1 is gone; connection 2's just-expired first key is its next refresh's.
        assert_eq!(census.expired, vec![key(&site("a"), &id(1), 60_000)]);
        // A key of connection 2 expired longer ago than a TTL (a delete that failed) is
        // nobody's any more: the sweep takes it.
        let leaked = key(&site("a"), &id(2), 9_000);
        store
            .insert(&leaked, b"", None, WriteMode::Overwrite)
            .expect("insert");
        let census = super::census(&store, &cfg, &site("a"), 70_000).expect("census");
        assert_eq!(census.live, 1);
        let mut expired = census.expired.clone();
        expired.sort();
        let mut want = vec![key(&site("a"), &id(1), 60_000), leaked];
        want.sort();
        assert_eq!(expired, want);
        assert_eq!(census.newest_join_ms, None, "connection 2 has refreshed");
        join(&store, &cfg, &site("a"), id(3), 65_000).expect("join");
        let census = super::census(&store, &cfg, &site("a"), 70_000).expect("census");
        assert_eq!(census.newest_join_ms, Some(65_000));
    }

    #[test]
    fn leases_round_trip_through_meta_and_refuse_forged_ids() {
        let lease = Lease {
            id: id(7),
            expiries_ms: vec![1, 2],
            page: None,
        };
        assert_eq!(
            Lease::from_meta(&lease.id, &lease.expiries_meta()),
            Some(lease.clone())
        );
        assert_eq!(
            Lease::from_meta(&lease.id, ""),
            Some(Lease {
                id: lease.id.clone(),
                expiries_ms: vec![],
                page: None,
            })
        );
        assert_eq!(Lease::from_meta("../x", "1"), None);
        assert_eq!(Lease::from_meta(&lease.id, "1,x"), None);
    }

    /// How long counting a listing takes per key, natively and inside Viceroy (Wasmtime, as on
    /// Compute): the simulator's factor for wasm is the ratio of the two
    /// (`cargo test --release --lib census_cost -- --ignored --nocapture`, then the same with
    /// `--target wasm32-wasip1`).
    #[test]
    #[ignore]
    fn census_cost() {
        let s = site("a");
        let keys: Vec<String> = (0..100_000u64)
            .map(|n| {
                let id = new_id_from([n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n]);
                key_on(
                    &s,
                    &id,
                    100_000 + n % 90_000,
                    (n % 3 == 0).then_some("0123456789abcdef"),
                )
            })
            .collect();
        let mut best = u128::MAX;
        for _ in 0..7 {
            let start = std::time::Instant::now();
            let census = census_of(&keys, &s, 150_000, 45_000);
            best = best.min(start.elapsed().as_nanos());
            assert!(census.live > 0);
        }
        println!("census_cost: {} ns per key", best / keys.len() as u128);
    }
}
