//! Who is online: one KV key per live connection and *window*, the window in its name.
//!
//! Time is cut into windows one heartbeat interval long. Key:
//! `site/<site>/p/<window>/<shard>/<presence id>`, then `/<page id>` for a reader counted on
//! one page of the site too (see `page`), then `/<country>` for a reader whose country Fastly's
//! geolocation knows (see `country`: two letters, never the address). `<shard>` is the id's first
//! [`SHARD_BITS`] bits written in binary, so a count can split a window's keys into any power
//! of two of equal shares by listing a longer prefix (see `census`). Visits live under
//! `site/<site>/v/`, beside, never inside, this prefix.
//!
//! A connection is counted in a window when it has that window's key. Each heartbeat writes
//! the keys of the windows from now until its presence lifetime (`presence_ttl_secs`) ends
//! that it has not written yet: in steady state one key a heartbeat, written a window ahead,
//! and nothing else (no delete: a count lists only its own window's prefix, so old windows'
//! keys are never read again and their KV TTL takes them). Heartbeats in the same window write
//! nothing, which bounds a client's write rate.
//!
//! Why windows: production KV may list an expired key for up to a day, and a listing shows
//! names only. With the window in the name a count needs no expiry per key, no grouping of a
//! connection's keys and no sort: a window's keys are listed in key order, so a connection's
//! keys (one per page it was counted on during a move) sit side by side and are counted once
//! while streaming. What a count costs is one list page per thousand readers, whatever the
//! audience, and nothing has to be swept.
//!
//! A close deletes the keys the lease names (the current and coming windows) without a
//! listing. A connection that vanished without an event stays counted until the last window
//! it wrote ends: between one presence lifetime and that plus a window after its last
//! heartbeat. A reader that reconnects with its presence id (a handover) writes the very same
//! keys, so it is never counted twice.

use crate::platform::clock::Clock;
use crate::platform::config::Config;
use crate::platform::kv::{KvError, KvStore, WriteMode, KEY_WRITE_INTERVAL_MS};
use crate::wire::site::SiteId;

/// The most windows a lease names: the current one and those its presence lifetime reaches
/// (at most two intervals: see `Config`), and one more for a heartbeat on a window's edge.
const MAX_LEASE: usize = 4;

/// How many of the id's leading bits name its shard. 2^16 shares is far more than any count
/// splits into (a million readers take 2^11), and costs 17 bytes a key.
pub const SHARD_BITS: usize = 16;

/// How long a window lasts: one heartbeat interval, so a connection writes one key a
/// heartbeat.
pub fn window_ms(config: &Config) -> u64 {
    u64::from(config.heartbeat_interval_secs).max(1) * 1000
}

/// The window `at_ms` falls in.
pub fn window_of(config: &Config, at_ms: u64) -> u64 {
    at_ms / window_ms(config)
}

/// A connection's presence: its random id and the windows it may have keys in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    /// Windows written, oldest first (windows that have ended are dropped as time passes).
    pub windows: Vec<u64>,
    /// The page id the connection is counted on, if any (every key of the lease names it).
    pub page: Option<String>,
    /// The reader's country (ISO 3166 alpha-2), if known: it rides every key as the page does,
    /// so counting by country costs no write of its own.
    pub country: Option<String>,
}

impl Lease {
    /// The lease as stored in connection meta: windows joined by commas.
    pub fn windows_meta(&self) -> String {
        self.windows
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads a lease back from meta. Ids are checked to be short lowercase hex, as
    /// [`new_id_from`] makes them; anything else is refused (`None`).
    pub fn from_meta(id: &str, windows: &str) -> Option<Lease> {
        if !is_presence_id(id) {
            return None;
        }
        let windows = windows
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        if windows.len() > MAX_LEASE {
            return None;
        }
        Some(Lease {
            id: id.to_string(),
            windows,
            page: None,
            country: None,
        })
    }

    /// The lease counted on `page` (a page id, as `page::id` makes them).
    pub fn on_page(mut self, page: Option<String>) -> Lease {
        self.page = page.filter(|p| crate::count::page::is_page_id(p));
        self
    }

    /// The lease of a reader in `country` (as `country::code` reads one; anything else is
    /// dropped, and the reader is counted in no country).
    pub fn in_country(mut self, country: Option<String>) -> Lease {
        self.country = country.filter(|c| crate::count::country::is_code(c));
        self
    }

    /// This lease's key in `window`.
    pub fn key(&self, site: &SiteId, window: u64) -> String {
        key_in(
            site,
            &self.id,
            window,
            self.page.as_deref(),
            self.country.as_deref(),
        )
    }

    /// Whether the connection still has presence (a close or the service ended it if not).
    pub fn is_present(&self) -> bool {
        !self.windows.is_empty()
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

/// The listing prefix of one site's presence keys, every window.
pub fn site_prefix(site: &SiteId) -> String {
    format!("{}p/", site.listing_prefix())
}

/// The listing prefix of one window's keys whose shard starts with `shard` (binary digits;
/// empty for the whole window).
pub fn window_prefix(site: &SiteId, window: u64, shard: &str) -> String {
    format!("{}{window}/{shard}", site_prefix(site))
}

/// The shard of a presence id: its first [`SHARD_BITS`] bits, in binary.
pub fn shard_of(id: &str) -> String {
    let bits = id
        .get(..SHARD_BITS / 4)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    format!("{bits:0width$b}", width = SHARD_BITS)
}

/// The key of one connection in one window.
pub fn key(site: &SiteId, id: &str, window: u64) -> String {
    key_in(site, id, window, None, None)
}

/// The key of one connection in one window, counted on `page` and in `country` too.
pub fn key_in(
    site: &SiteId,
    id: &str,
    window: u64,
    page: Option<&str>,
    country: Option<&str>,
) -> String {
    let mut key = format!("{}/{id}", window_prefix(site, window, &shard_of(id)));
    for part in [page, country].into_iter().flatten() {
        key.push('/');
        key.push_str(part);
    }
    key
}

/// The windows a connection seen at `now_ms` must have keys in: from the current one to the
/// one its presence lifetime ends in. A lease's windows outside these have ended, or are not
/// windows at all (a connection opened before presence was kept by window names expiries in
/// milliseconds there: they lie far ahead, so its next heartbeat writes its windows afresh).
fn windows_due(config: &Config, now_ms: u64) -> std::ops::RangeInclusive<u64> {
    let ttl_ms = u64::from(config.presence_ttl_secs) * 1000;
    window_of(config, now_ms)..=window_of(config, now_ms + ttl_ms)
}

/// The keys of `lease` that may count now or later: those of its windows still due.
fn live_keys(config: &Config, site: &SiteId, lease: &Lease, now_ms: u64) -> Vec<String> {
    let due = windows_due(config, now_ms);
    lease
        .windows
        .iter()
        .filter(|w| due.contains(w))
        .map(|w| lease.key(site, *w))
        .collect()
}

/// Deletes `keys`. A key takes about one write a second, and a delete is a write: a key
/// written less than a second ago refuses its delete (429), which is tried again once the
/// second has passed; otherwise the key would count until its window ends.
fn delete_waiting(kv: &dyn KvStore, clock: &dyn Clock, keys: &[String]) -> Result<(), KvError> {
    let mut failed = kv.delete_many(keys);
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

/// Registers a new connection: one KV write per window its presence lifetime reaches (two,
/// sometimes three).
pub fn join(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    id: String,
    now_ms: u64,
) -> Result<Lease, KvError> {
    join_on(kv, config, site, id, None, now_ms)
}

/// [`join`], counted on `page` (a page id) too: no more writes.
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
        windows: Vec::new(),
        page,
        country: None,
    };
    join_as(kv, config, site, lease, now_ms)
}

/// [`join`] for `lease` as it stands (its id, page and country; its windows are written
/// afresh).
pub fn join_as(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    mut lease: Lease,
    now_ms: u64,
) -> Result<Lease, KvError> {
    lease.windows.clear();
    for window in windows_due(config, now_ms) {
        write(kv, config, &lease.key(site, window), window, now_ms)?;
        lease.windows.push(window);
    }
    Ok(lease)
}

/// Moves a connection to another page (or off pages): writes its keys on the new page, then
/// deletes those on the old one (a page move is a reader's navigation, not a heartbeat: a few
/// operations are fine), waiting out a key's write limit if it was written a moment ago. A key
/// whose delete still fails counts the reader on its old page too until its window ends (on
/// the site, the reader still counts once).
pub fn move_to(
    kv: &dyn KvStore,
    clock: &dyn Clock,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
    page: Option<String>,
) -> Result<Lease, KvError> {
    let now_ms = clock.now_ms();
    let moved = Lease {
        page,
        ..lease.clone()
    };
    let moved = join_as(kv, config, site, moved, now_ms)?;
    let new_keys: Vec<String> = moved.windows.iter().map(|w| moved.key(site, *w)).collect();
    let old: Vec<String> = live_keys(config, site, lease, now_ms)
        .into_iter()
        .filter(|k| !new_keys.contains(k))
        .collect();
    let _ = delete_waiting(kv, clock, &old);
    Ok(moved)
}

/// Extends a connection's presence on a heartbeat: writes the key of each window its presence
/// lifetime now reaches that it has no key in yet (one, once a window; none for a heartbeat
/// in a window already written). Returns the updated lease and whether anything was written.
pub fn refresh(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
    now_ms: u64,
) -> Result<(Lease, bool), KvError> {
    // A lease with no windows has left (a close, or the service closed it): a late heartbeat
    // must not bring it back.
    if !lease.is_present() {
        return Ok((lease.clone(), false));
    }
    let due = windows_due(config, now_ms);
    let mut next = Lease {
        windows: lease
            .windows
            .iter()
            .copied()
            .filter(|w| due.contains(w))
            .collect(),
        ..lease.clone()
    };
    let mut wrote = false;
    for window in due {
        if next.windows.contains(&window) {
            continue;
        }
        write(kv, config, &next.key(site, window), window, now_ms)?;
        next.windows.push(window);
        wrote = true;
    }
    next.windows.sort_unstable();
    let excess = next.windows.len().saturating_sub(MAX_LEASE);
    next.windows.drain(..excess);
    Ok((next, wrote))
}

/// Removes a connection at once: deletes its keys in the current and coming windows (no
/// listing; ended windows are never counted again), waiting out a key's write limit if one was
/// written a moment ago.
pub fn leave(
    kv: &dyn KvStore,
    clock: &dyn Clock,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
) -> Result<(), KvError> {
    delete_waiting(kv, clock, &live_keys(config, site, lease, clock.now_ms()))
}

/// [`leave`] for a lease that may not name every window it has keys in (an SSE reader's, whose
/// presence Fanout's calls renewed after the session the browser holds was given): deletes
/// its key in every window due now, written or not (deleting a missing key is no error).
pub fn leave_all_due(
    kv: &dyn KvStore,
    clock: &dyn Clock,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
) -> Result<(), KvError> {
    let every = Lease {
        windows: windows_due(config, clock.now_ms()).collect(),
        ..lease.clone()
    };
    leave(kv, clock, config, site, &every)
}

/// Writes `key`, the key of `window`, to live until the window has ended (KV TTLs are whole
/// seconds; a count lists its own window only, so a key that outlives its window is never
/// counted).
fn write(
    kv: &dyn KvStore,
    config: &Config,
    key: &str,
    window: u64,
    now_ms: u64,
) -> Result<(), KvError> {
    let ends_ms = (window + 1) * window_ms(config);
    let ttl_secs = ends_ms.saturating_sub(now_ms).div_ceil(1000) + 1;
    kv.insert(
        key,
        b"",
        Some(u32::try_from(ttl_secs).unwrap_or(u32::MAX)),
        WriteMode::Overwrite,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kv::CountingKv;
    use crate::platform::testing::MemoryKv;
    use fixtures::*;

    #[test]
    fn keys_name_the_window_and_the_ids_first_bits() {
        let s = site("a");
        let id = format!("f0a1{}", "0".repeat(28));
        assert_eq!(shard_of(&id), "1111000010100001");
        assert_eq!(
            key_in(&s, &id, 7, Some("0123456789abcdef"), None),
            format!("site/a/p/7/1111000010100001/{id}/0123456789abcdef")
        );
        assert_eq!(
            key_in(&s, &id, 7, Some("0123456789abcdef"), Some("NZ")),
            format!("site/a/p/7/1111000010100001/{id}/0123456789abcdef/NZ")
        );
        assert!(key(&s, &id, 7).starts_with(&window_prefix(&s, 7, "1111")));
        assert!(!key(&s, &id, 7).starts_with(&window_prefix(&s, 7, "0")));
    }

    #[test]
    fn a_heartbeat_writes_one_key_a_window_and_spam_writes_nothing() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        // Joined at 10 s: presence until 55 s, windows 0 and 1.
        let mut lease = join(&kv, &cfg, &site("a"), id(1), 10_000).expect("join");
        let mut wrote_at = Vec::new();
        for t in (11_000..=80_000).step_by(1_000) {
            let (l, wrote) = refresh(&kv, &cfg, &site("a"), &lease, t).expect("refresh");
            if wrote {
                wrote_at.push(t);
            }
            lease = l;
        }
        // A heartbeat a second writes once a window: when its presence first reaches it.
        assert_eq!(wrote_at, vec![15_000, 45_000, 75_000]);
        assert_eq!(kv.counts().insert, 5);
        assert_eq!(kv.counts().delete, 0, "a heartbeat deletes nothing");
        // Ended windows leave the lease.
        assert_eq!(lease.windows, vec![2, 3, 4]);
    }

    #[test]
    fn a_connection_opened_before_windows_writes_its_windows_on_its_next_heartbeat() {
        // Its meta names key expiries in milliseconds: read as windows, far ahead of any due.
        let store = MemoryKv::default();
        let cfg = config();
        let legacy = Lease::from_meta(&id(1), "1799999995000,1800000025000").expect("lease");
        let (lease, wrote) =
            refresh(&store, &cfg, &site("a"), &legacy, 1_800_000_000_000).expect("refresh");
        assert!(wrote);
        assert_eq!(lease.windows, vec![60_000_000, 60_000_001]);
        assert_eq!(store.len(), 2);
        // Its close deletes what it wrote, and no key that was never one.
        let kv = CountingKv::new(&store);
        leave(&kv, &clock_at(1_800_000_000_000), &cfg, &site("a"), &legacy).expect("leave");
        assert_eq!(kv.counts().delete, 0);
        leave(&kv, &clock_at(1_800_000_000_000), &cfg, &site("a"), &lease).expect("leave");
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_move_right_after_a_write_waits_out_the_keys_write_limit() {
        let store = FailingDeletes {
            inner: MemoryKv::default(),
            failing: std::cell::Cell::new(1),
        };
        let cfg = config();
        let page = |p: &str| Some(p.to_string());
        let lease = join_on(
            &store,
            &cfg,
            &site("a"),
            id(1),
            page("0123456789abcdef"),
            1_000,
        )
        .expect("join");
        let clock = clock_at(1_200);
        let moved = move_to(
            &store,
            &clock,
            &cfg,
            &site("a"),
            &lease,
            page("fedcba9876543210"),
        )
        .expect("move");
        assert_eq!(clock.now.get(), 2_200, "waited a second");
        let keys = store.inner.keys();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.ends_with("/fedcba9876543210")));
        assert_eq!(moved.windows, lease.windows);
    }

    #[test]
    fn leases_round_trip_through_meta_and_refuse_forged_ids() {
        let lease = Lease {
            id: id(7),
            windows: vec![1, 2],
            page: None,
            country: None,
        };
        assert_eq!(
            Lease::from_meta(&lease.id, &lease.windows_meta()),
            Some(lease.clone())
        );
        assert_eq!(
            Lease::from_meta(&lease.id, ""),
            Some(Lease {
                id: lease.id.clone(),
                windows: vec![],
                page: None,
                country: None,
            })
        );
        assert_eq!(Lease::from_meta("../x", "1"), None);
        assert_eq!(Lease::from_meta(&lease.id, "1,x"), None);
        assert_eq!(Lease::from_meta(&lease.id, "1,2,3,4,5"), None);
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
    fn a_close_right_after_a_write_waits_out_the_keys_write_limit() {
        let store = FailingDeletes {
            inner: MemoryKv::default(),
            failing: std::cell::Cell::new(1),
        };
        let clock = clock_at(30_500);
        let cfg = config();
        let lease = join(&store, &cfg, &site("a"), id(1), 30_000).expect("join");
        leave(&store, &clock, &cfg, &site("a"), &lease).expect("deleted on the second try");
        assert_eq!(store.inner.len(), 0);
        assert_eq!(clock.now.get(), 31_500, "waited a second");
    }
}

/// What the tests of presence and of counting it share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::platform::testing::ManualClock;

    pub(crate) fn site(s: &str) -> SiteId {
        SiteId::parse(s).expect("site")
    }

    /// Windows of 30 s, presence that lasts 45 s.
    pub(crate) fn config() -> Config {
        Config {
            heartbeat_interval_secs: 30,
            presence_ttl_secs: 45,
            ..Config::default()
        }
    }

    pub(crate) fn id(n: u64) -> String {
        new_id_from([n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n])
    }

    pub(crate) fn clock_at(ms: u64) -> ManualClock {
        let clock = ManualClock::default();
        clock.now.set(ms);
        clock
    }
}
