//! The site's snapshot: the count and total its last broadcast published, kept in the KV
//! store so that every POP can answer "how many are online" with a lookup instead of a
//! listing (the stats API, and sweeps deciding whether anything changed).
//!
//! A broadcast may run twice a second, but a KV key takes about one write a second, so the
//! snapshot rotates over [`keys_per_site`] keys `snapshot/<site>/<i>`, slot by slot: each key is
//! written at most once a second. Reading looks up all of them and keeps the newest slot.
//! Reads may be ~300 ms stale (KV lookups are eventually consistent); the POP cache keeps a
//! read for a second.

use crate::count::peak::{Last, Peak};
use crate::platform::cache::SharedCache;
use crate::platform::config::Config;
use crate::platform::kv::{KvError, KvStore, WriteMode};
use crate::platform::Services;
use crate::wire::site::SiteId;

/// How long a POP keeps a snapshot it read, in milliseconds.
pub const CACHE_MS: u64 = 1000;
/// A sweep republishes (and stores) an unchanged count this long after the last publish, so a
/// page that missed a message is corrected within this time; a snapshot is never older while
/// anyone reads the site.
pub const REFRESH_MS: u64 = 300_000;

/// How long a stored snapshot lives after the write that stored it, in seconds: a day. Every
/// broadcast renews it (a site with readers is swept every few seconds and republished every
/// [`REFRESH_MS`] at least), so only a site nobody has read for a day loses it, and with it
/// nothing a page could show; an invented site id leaves no key behind for good.
pub const TTL_SECS: u32 = 86_400;

/// What a broadcast published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The end of the slot the broadcast belonged to (orders snapshots).
    pub slot_end_ms: u64,
    pub count: u64,
    /// The total visits, when the broadcast could read them.
    pub total: Option<u64>,
    /// The counts of the site's busiest pages (page id, count), at most `page::MAX_PAGES`.
    pub pages: Vec<(String, u64)>,
    /// The peaks so far of the slot's minute and of its day (see `peak`).
    pub peak: Option<Peak>,
    /// Readers per country, exact (see `country`: shown to the site's owner only, floored).
    pub countries: Vec<(String, u64)>,
}

impl Snapshot {
    /// `<slot end> <count> <total or -> [p=<page id>:<count>,…] [m=<minute>:<peak>:<day peak>]
    /// [c=<country>:<count>,…]`.
    fn encode(&self) -> String {
        let total = self.total.map_or("-".to_string(), |t| t.to_string());
        let mut text = format!("{} {} {total}", self.slot_end_ms, self.count);
        if !self.pages.is_empty() {
            let pages: Vec<String> = self.pages.iter().map(|(p, n)| format!("{p}:{n}")).collect();
            text.push_str(" p=");
            text.push_str(&pages.join(","));
        }
        if let Some(peak) = &self.peak {
            text.push_str(&format!(
                " m={}:{}:{}",
                peak.minute, peak.minute_peak, peak.day_peak
            ));
        }
        if !self.countries.is_empty() {
            let countries: Vec<String> = self
                .countries
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect();
            text.push_str(" c=");
            text.push_str(&countries.join(","));
        }
        text
    }

    fn decode(bytes: &[u8]) -> Option<Snapshot> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(' ');
        let slot_end_ms = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        let total = match parts.next()? {
            "-" => None,
            t => Some(t.parse().ok()?),
        };
        let mut snapshot = Snapshot {
            slot_end_ms,
            count,
            total,
            pages: Vec::new(),
            peak: None,
            countries: Vec::new(),
        };
        for part in parts {
            match part.split_once('=')? {
                ("p", list) if snapshot.pages.is_empty() => {
                    snapshot.pages = list
                        .split(',')
                        .map(|entry| {
                            let (page, n) = entry.split_once(':')?;
                            crate::count::page::is_page_id(page).then_some(())?;
                            Some((page.to_string(), n.parse().ok()?))
                        })
                        .collect::<Option<Vec<(String, u64)>>>()?;
                }
                ("m", peak) if snapshot.peak.is_none() => {
                    let mut n = peak.split(':').map(|v| v.parse::<u64>().ok());
                    let (Some(Some(minute)), Some(Some(minute_peak)), Some(Some(day_peak)), None) =
                        (n.next(), n.next(), n.next(), n.next())
                    else {
                        return None;
                    };
                    snapshot.peak = Some(Peak {
                        minute,
                        minute_peak,
                        day_peak,
                    });
                }
                ("c", list) if snapshot.countries.is_empty() => {
                    snapshot.countries = list
                        .split(',')
                        .map(|entry| {
                            let (code, n) = entry.split_once(':')?;
                            crate::count::country::is_code(code).then_some(())?;
                            Some((code.to_string(), n.parse().ok()?))
                        })
                        .collect::<Option<Vec<(String, u64)>>>()?;
                }
                _ => return None,
            }
        }
        Some(snapshot)
    }

    /// Whether the snapshot is past its [`lifetime_ms`] at `now_ms`: its readers are gone.
    pub fn outlived(&self, now_ms: u64, config: &Config) -> bool {
        now_ms > self.slot_end_ms + lifetime_ms(config)
    }

    /// The count as of `now_ms`: the snapshot's, or 0 once it has outlived its readers.
    pub fn count_at(&self, now_ms: u64, config: &Config) -> u64 {
        if self.outlived(now_ms, config) {
            0
        } else {
            self.count
        }
    }

    /// Whether the snapshot has a count for page `page_id`.
    pub fn has_page(&self, page_id: &str) -> bool {
        self.pages.iter().any(|(p, _)| p == page_id)
    }

    /// The count of page `page_id`: `Some(0)` for a page nobody reads, `None` for a page
    /// beyond the site's pages with counts (when they are all taken).
    pub fn page_count(&self, page_id: &str) -> Option<u64> {
        match self.pages.iter().find(|(p, _)| p == page_id) {
            Some((_, n)) => Some(*n),
            None if self.pages.len() >= crate::count::page::MAX_PAGES => None,
            None => Some(0),
        }
    }
}

/// How long a snapshot stays true with no newer one. While anyone reads the site, their
/// heartbeats' sweeps store a snapshot at least every [`REFRESH_MS`]; one older than that plus
/// a presence's longest reach (its lifetime and the rest of the window that ends in) and a
/// sweep interval means nobody has heartbeat since: everyone it counted is gone (vanished
/// without an event, say with a POP that died).
pub fn lifetime_ms(config: &Config) -> u64 {
    REFRESH_MS
        + u64::from(config.presence_ttl_secs) * 1000
        + crate::count::presence::window_ms(config)
        + u64::from(config.sweep_interval_secs) * 1000
}

/// When the count a read answers was taken, and whether it still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub as_of_ms: u64,
    pub age_ms: u64,
    /// The snapshot outlived its readers (no count stored for longer than one can stand): the
    /// read answers 0, and says nobody has measured the site since `as_of_ms`.
    pub stale: bool,
}

impl Freshness {
    /// Of `found`, the site's snapshot, read at `now_ms`; a site with none is counted now.
    pub fn of(found: Option<&Snapshot>, now_ms: u64, config: &Config) -> Freshness {
        match found {
            Some(s) => Freshness {
                as_of_ms: s.slot_end_ms,
                age_ms: now_ms.saturating_sub(s.slot_end_ms),
                stale: s.outlived(now_ms, config),
            },
            None => Freshness {
                as_of_ms: now_ms,
                age_ms: 0,
                stale: false,
            },
        }
    }
}

/// How many keys the snapshot rotates over: enough that each takes at most a write a second.
pub fn keys_per_site(config: &Config) -> u64 {
    1000u64.div_ceil(u64::from(config.broadcast_interval_ms).max(1))
}

fn key(site: &SiteId, i: u64) -> String {
    format!("snapshot/{site}/{i}")
}

fn cache_key(site: &SiteId) -> String {
    format!("snapshot/{site}")
}

/// Stores what a broadcast published.
pub fn write(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    snapshot: &Snapshot,
) -> Result<(), KvError> {
    let interval = u64::from(config.broadcast_interval_ms).max(1);
    let i = (snapshot.slot_end_ms / interval) % keys_per_site(config);
    kv.insert(
        &key(site, i),
        snapshot.encode().as_bytes(),
        Some(TTL_SECS),
        WriteMode::Overwrite,
    )
}

/// The newest snapshot stored, if any (a key that does not parse is skipped).
pub fn read(kv: &dyn KvStore, config: &Config, site: &SiteId) -> Result<Option<Snapshot>, KvError> {
    let mut newest: Option<Snapshot> = None;
    for i in 0..keys_per_site(config) {
        let Some(entry) = kv.lookup(&key(site, i))? else {
            continue;
        };
        if let Some(s) = Snapshot::decode(&entry.value) {
            if newest
                .as_ref()
                .is_none_or(|n| s.slot_end_ms > n.slot_end_ms)
            {
                newest = Some(s);
            }
        }
    }
    Ok(newest)
}

/// The snapshot as this POP knows it: read at most once a second for all requests, and never
/// older than one this POP has seen before (a lookup may return a copy seconds old: a page, the
/// API or a sweep must not go back to an older count). `Ok(None)`: the site has none yet.
pub fn cached(services: &Services, site: &SiteId) -> Result<Option<Snapshot>, KvError> {
    let mut failure = None;
    let mut compute = || match read(services.kv, services.config, site) {
        Ok(found) => Some(found.map_or_else(|| b"none".to_vec(), |s| s.encode().into_bytes())),
        Err(e) => {
            failure = Some(e);
            None
        }
    };
    let bytes = services
        .cache
        .get_or_compute(&cache_key(site), CACHE_MS, &mut compute);
    let read = match (bytes, failure) {
        (Some(b), _) => Snapshot::decode(&b),
        (None, Some(e)) => return Err(e),
        (None, None) => None,
    };
    let newest = newest_seen(services.cache, site);
    Ok(match (read, newest) {
        (Some(r), Some(n)) if n.slot_end_ms >= r.slot_end_ms => Some(n),
        (Some(r), _) => {
            store_newest(services.cache, site, &r);
            Some(r)
        }
        (None, n) => n,
    })
}

/// Makes `snapshot` what this POP answers for the next second (after publishing, or after a
/// reset changed the total), unless the POP has seen a newer one already (a slower broadcast
/// finishing after a faster one of a later slot).
pub fn remember(cache: &dyn SharedCache, site: &SiteId, snapshot: &Snapshot) {
    if newest_seen(cache, site).is_some_and(|n| n.slot_end_ms > snapshot.slot_end_ms) {
        return;
    }
    cache.set(&cache_key(site), snapshot.encode().as_bytes(), CACHE_MS);
    store_newest(cache, site, snapshot);
}

/// `read`, or the newest snapshot this POP has seen if that is newer.
pub fn newer_of_seen(
    cache: &dyn SharedCache,
    site: &SiteId,
    read: Option<Snapshot>,
) -> Option<Snapshot> {
    match (read, newest_seen(cache, site)) {
        (Some(r), Some(n)) if n.slot_end_ms > r.slot_end_ms => Some(n),
        (None, n) => n,
        (r, _) => r,
    }
}

/// How long a POP keeps the newest snapshot it has seen: as long as a snapshot can count.
const NEWEST_MS: u64 = REFRESH_MS;

fn newest_key(site: &SiteId) -> String {
    format!("snapshot-newest/{site}")
}

fn newest_seen(cache: &dyn SharedCache, site: &SiteId) -> Option<Snapshot> {
    cache
        .get(&newest_key(site))
        .and_then(|b| Snapshot::decode(&b))
}

/// The newest snapshot this POP has seen (kept as long as a snapshot can count), whatever the
/// store says now: what a read answers when the store cannot be asked.
pub fn last_seen(cache: &dyn SharedCache, site: &SiteId) -> Option<Snapshot> {
    newest_seen(cache, site)
}

/// Makes `snapshot` the newest this POP has seen (its callers have just read the one before,
/// and found it no newer).
fn store_newest(cache: &dyn SharedCache, site: &SiteId, snapshot: &Snapshot) {
    cache.set(&newest_key(site), snapshot.encode().as_bytes(), NEWEST_MS);
}

/// How long this POP remembers that a reader left (longer than any broadcast takes).
const LEFT_MS: u64 = 10_000;

/// Notes that a reader of `site` left at `now_ms`: until a broadcast counts after that, the
/// snapshot still counts that reader.
pub fn note_leave(cache: &dyn SharedCache, site: &SiteId, now_ms: u64) {
    cache.set(&left_key(site), now_ms.to_string().as_bytes(), LEFT_MS);
}

/// Whether `snapshot` may still count a reader who has left (as far as this POP knows).
pub fn counts_a_leaver(cache: &dyn SharedCache, site: &SiteId, snapshot: &Snapshot) -> bool {
    crate::platform::cache::get_u64(cache, &left_key(site))
        .is_some_and(|left| left >= snapshot.slot_end_ms)
}

fn left_key(site: &SiteId) -> String {
    format!("left/{site}")
}

/// Notes that a reader of `site` joined at `now_ms` (and was shown a first count made from
/// the snapshot): a sweep of this POP that finds the count unchanged still tells the pages,
/// since a leave elsewhere in the same slot may have made that first count one too many.
pub fn note_join(cache: &dyn SharedCache, site: &SiteId, now_ms: u64) {
    cache.set(&joined_key(site), now_ms.to_string().as_bytes(), LEFT_MS);
}

/// Whether a reader joined in this POP after `snapshot` was counted.
pub fn joined_since(cache: &dyn SharedCache, site: &SiteId, snapshot: &Snapshot) -> bool {
    crate::platform::cache::get_u64(cache, &joined_key(site))
        .is_some_and(|joined| joined >= snapshot.slot_end_ms)
}

fn joined_key(site: &SiteId) -> String {
    format!("joined/{site}")
}

impl Snapshot {
    /// What this snapshot published, as the peaks that follow it need it.
    pub fn last(&self) -> Last {
        Last {
            count: self.count,
            peak: self.peak,
        }
    }
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot published at the end of `minute`, with its peaks (tests).
    pub(crate) fn at_minute(minute: u64, count: u64, peak: Option<(u64, u64)>) -> Snapshot {
        Snapshot {
            slot_end_ms: minute * 60_000,
            count,
            peak: peak.map(|(minute_peak, day_peak)| Peak {
                minute,
                minute_peak,
                day_peak,
            }),
            ..Snapshot::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kv::CountingKv;
    use crate::platform::testing::{MemoryKv, TestServices};

    fn site() -> SiteId {
        SiteId::parse("s").expect("site")
    }

    fn snap(slot: u64, count: u64, total: Option<u64>) -> Snapshot {
        Snapshot {
            slot_end_ms: slot,
            count,
            total,
            pages: Vec::new(),
            peak: None,
            countries: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        for s in [snap(1, 2, Some(3)), snap(1_800_000_000_500, 0, None)] {
            assert_eq!(Snapshot::decode(s.encode().as_bytes()), Some(s));
        }
        let with_pages = Snapshot {
            pages: vec![
                ("0123456789abcdef".into(), 4),
                ("fedcba9876543210".into(), 1),
            ],
            peak: Some(Peak {
                minute: 29_930_000,
                minute_peak: 7,
                day_peak: 9,
            }),
            countries: vec![("US".into(), 3), ("DE".into(), 1)],
            ..snap(1, 5, None)
        };
        assert_eq!(
            Snapshot::decode(with_pages.encode().as_bytes()),
            Some(with_pages)
        );
        for bad in [
            "",
            "1 2",
            "1 2 x",
            "1 2 3 4",
            "a 2 3",
            "1 2 3 /docs:1",
            "1 2 3 p=/docs:1",
            "1 2 3 p=0123456789abcdef:x",
            "1 2 3 p=0123456789abcdef:1 x",
            "1 2 3 m=1:2",
            "1 2 3 m=1:2:3:4",
            "1 2 3 m=1:2:3 m=1:2:3",
            "1 2 3 c=us:1",
            "1 2 3 c=US:x",
        ] {
            assert_eq!(Snapshot::decode(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn consecutive_slots_rotate_keys_so_none_takes_two_writes_a_second() {
        let config = Config::default();
        assert_eq!(keys_per_site(&config), 2);
        let kv = MemoryKv::default();
        write(&kv, &config, &site(), &snap(10_000, 5, None)).expect("write");
        write(&kv, &config, &site(), &snap(10_500, 6, Some(9))).expect("write");
        assert_eq!(kv.len(), 2);
        assert_eq!(
            read(&kv, &config, &site()),
            Ok(Some(snap(10_500, 6, Some(9))))
        );
        write(&kv, &config, &site(), &snap(11_000, 4, Some(9))).expect("write");
        assert_eq!(kv.len(), 2);
        assert_eq!(
            read(&kv, &config, &site()),
            Ok(Some(snap(11_000, 4, Some(9))))
        );
    }

    #[test]
    fn a_pop_reads_the_snapshot_once_a_second() {
        let t = TestServices::new();
        let counting = CountingKv::new(&t.kv);
        write(&t.kv, &t.config, &site(), &snap(500, 7, None)).expect("write");
        let mut services = t.services();
        services.kv = &counting;
        assert_eq!(cached(&services, &site()), Ok(Some(snap(500, 7, None))));
        assert_eq!(cached(&services, &site()), Ok(Some(snap(500, 7, None))));
        assert_eq!(counting.counts().lookup, 2, "one read of both keys");
        assert_eq!(
            cached(&services, &SiteId::parse("new").expect("site")),
            Ok(None)
        );
    }

    #[test]
    fn a_pop_never_goes_back_to_an_older_snapshot() {
        let t = TestServices::new();
        t.set_time(10_000);
        let s = site();
        remember(&t.cache, &s, &snap(2000, 7, None));
        // A slower broadcast of an earlier slot finishing later changes nothing.
        remember(&t.cache, &s, &snap(1500, 9, None));
        let now = |t: &TestServices| cached(&t.services(), &s).expect("read").map(|x| x.count);
        assert_eq!(now(&t), Some(7));
        // The second's copy lapses and the POP's lookup returns an older copy (KV lookups
        // may be seconds stale): the POP keeps answering the newest it has seen.
        write(&t.kv, &t.config, &s, &snap(1500, 9, None)).expect("write");
        t.set_time(12_000);
        assert_eq!(now(&t), Some(7));
        // A newer one read from the store is taken.
        write(&t.kv, &t.config, &s, &snap(2500, 4, None)).expect("write");
        t.set_time(14_000);
        assert_eq!(now(&t), Some(4));
        // A reset of the total (same slot) is remembered.
        remember(&t.cache, &s, &snap(2500, 4, Some(0)));
        assert_eq!(
            cached(&t.services(), &s)
                .expect("read")
                .and_then(|x| x.total),
            Some(0)
        );
    }
}
