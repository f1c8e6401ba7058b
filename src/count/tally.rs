//! Counting a window's presence keys, or one share of them: the listing streamed page by
//! page, each connection counted once (its keys are adjacent in key order), with the readers
//! of each page. What to list is `presence`'s key layout; how a large window is split over
//! executions is `census`'s.

use std::collections::BTreeMap;

use crate::count::country::CountryCounts;
use crate::count::presence::{is_presence_id, window_of, window_prefix, SHARD_BITS};
use crate::platform::config::Config;
use crate::platform::kv::{KvError, KvStore, LIST_PAGE};
use crate::wire::site::SiteId;

/// What counting some of a window's keys found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tally {
    /// Distinct connections: the count.
    pub live: u64,
    /// Keys the listing returned.
    pub keys: u64,
    /// List pages read.
    pub pages_listed: u64,
    /// Connections per page id, for those counted on a page.
    pub pages: BTreeMap<String, u64>,
    /// Connections per country, for those whose country is known.
    pub countries: CountryCounts,
}

impl Tally {
    /// Adds another share's tally (shares never hold the same connection).
    pub fn add(&mut self, other: Tally) {
        self.live += other.live;
        self.keys += other.keys;
        self.pages_listed += other.pages_listed;
        for (page, n) in other.pages {
            *self.pages.entry(page).or_default() += n;
        }
        self.countries.add(&other.countries);
    }
}

/// Counts the connections in `window` whose shard starts with `shard` (binary digits; empty
/// for every connection), streaming the listing page by page: nothing is held but the page
/// being read and the per-page counts.
pub fn tally(kv: &dyn KvStore, site: &SiteId, window: u64, shard: &str) -> Result<Tally, KvError> {
    tally_within(kv, site, window, shard, u64::MAX).map(|t| t.unwrap_or_default())
}

/// [`tally`], reading at most `max_pages` list pages: `None` when the share holds more (it
/// must be split further; see `census`).
pub fn tally_within(
    kv: &dyn KvStore,
    site: &SiteId,
    window: u64,
    shard: &str,
    max_pages: u64,
) -> Result<Option<Tally>, KvError> {
    let prefix = window_prefix(site, window, shard);
    let window_part = window_prefix(site, window, "");
    let mut counter = Counter::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = kv.list(&prefix, cursor.as_deref(), LIST_PAGE)?;
        counter.tally.pages_listed += 1;
        for key in &page.keys {
            counter.take(key.strip_prefix(&window_part));
        }
        match page.next_cursor {
            Some(_) if counter.tally.pages_listed >= max_pages => return Ok(None),
            Some(next) if !next.is_empty() => cursor = Some(next),
            _ => return Ok(Some(counter.finish())),
        }
    }
}

/// Counts the connections alive at `now_ms` with one unbounded listing (for tests and tools:
/// the service counts through `census`, which splits a large site).
pub fn count(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    now_ms: u64,
) -> Result<u64, KvError> {
    tally(kv, site, window_of(config, now_ms), "").map(|t| t.live)
}

/// Keys in listing order, one at a time: a connection's keys are adjacent (same shard, same
/// id), so it counts once, on the page and in the country of its last key.
/// (The last id, page and country are kept in buffers reused from key to key: a count of a
/// thousand keys makes no string per key.)
#[derive(Default)]
struct Counter {
    tally: Tally,
    last_id: String,
    last_page: Option<String>,
    last_country: Option<usize>,
}

impl Counter {
    /// Takes one key's part after `<window>/` (`None`: not a key of this window).
    fn take(&mut self, rest: Option<&str>) {
        self.tally.keys += 1;
        let Some(Parsed { id, page, country }) = rest.and_then(parse_key) else {
            return;
        };
        if self.last_id != id {
            self.close_connection();
            self.tally.live += 1;
            self.last_id.clear();
            self.last_id.push_str(id);
        }
        match (page, &mut self.last_page) {
            (Some(page), Some(last)) => {
                last.clear();
                last.push_str(page);
            }
            (page, last) => *last = page.map(str::to_string),
        }
        self.last_country = country.and_then(CountryCounts::index);
    }

    fn close_connection(&mut self) {
        if let Some(country) = self.last_country.take() {
            self.tally.countries.add_at(country, 1);
        }
        if let Some(page) = self.last_page.take() {
            match self.tally.pages.get_mut(&page) {
                Some(n) => *n += 1,
                None => {
                    self.tally.pages.insert(page, 1);
                }
            }
        }
    }

    fn finish(mut self) -> Tally {
        self.close_connection();
        self.tally
    }
}

/// A presence key's parts after its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed<'a> {
    id: &'a str,
    page: Option<&'a str>,
    country: Option<&'a str>,
}

/// Splits `<shard>/<id>[/<page id>][/<country>]`; foreign or malformed keys are skipped.
/// Every part has a fixed width ([`SHARD_BITS`] binary digits, a 32-digit id, a 16-digit page
/// id, two letters), so the parts are cut where they must be, not searched for: this runs once
/// a key a count lists, a million times a count at a million readers.
fn parse_key(rest: &str) -> Option<Parsed<'_>> {
    const ID_AT: usize = SHARD_BITS + 1;
    const ID_END: usize = ID_AT + 32;
    const PAGE_END: usize = ID_END + 1 + 16;
    let bytes = rest.as_bytes();
    let part = |at: usize, end: usize| {
        // '/' is ASCII, so every cut is at a character boundary (`get` checks anyway).
        (bytes.get(at) == Some(&b'/'))
            .then(|| rest.get(at + 1..end))
            .flatten()
    };
    let (page, country) = match bytes.len() {
        ID_END => (None, None),
        n if n == ID_END + 3 => (None, Some(part(ID_END, n)?)),
        PAGE_END => (Some(part(ID_END, PAGE_END)?), None),
        n if n == PAGE_END + 3 => (Some(part(ID_END, PAGE_END)?), Some(part(PAGE_END, n)?)),
        _ => return None,
    };
    if bytes[SHARD_BITS] != b'/' {
        return None;
    }
    let (shard, id) = (rest.get(..SHARD_BITS)?, rest.get(ID_AT..ID_END)?);
    let page_ok = page.is_none_or(crate::count::page::is_page_id);
    let country_ok = country.is_none_or(crate::count::country::is_code);
    (page_ok && country_ok && is_presence_id(id) && shard_matches(shard, id)).then_some(Parsed {
        id,
        page,
        country,
    })
}

/// Whether `shard` is `id`'s shard ([`shard_of`], without making a string of it).
fn shard_matches(shard: &str, id: &str) -> bool {
    let bits = u32::from_str_radix(shard, 2).ok();
    let leading = id
        .get(..SHARD_BITS / 4)
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    shard.len() == SHARD_BITS && bits.is_some() && bits == leading
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::presence::fixtures::*;
    use crate::count::presence::{join, join_on, leave, move_to, refresh};
    use crate::platform::kv::{CountingKv, WriteMode};
    use crate::platform::testing::MemoryKv;

    #[test]
    fn join_writes_the_windows_its_presence_reaches_and_counts() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        // At 10 s, 45 s of presence reaches into the second window.
        let lease = join(&kv, &config(), &site("a"), id(1), 10_000).expect("join");
        assert_eq!(lease.windows, vec![0, 1]);
        assert_eq!(kv.counts().insert, 2);
        // At 20 s, into the third.
        let lease = join(&kv, &config(), &site("a"), id(2), 20_000).expect("join");
        assert_eq!(lease.windows, vec![0, 1, 2]);
        assert_eq!(count(&kv, &config(), &site("a"), 20_000), Ok(2));
        assert_eq!(count(&kv, &config(), &site("b"), 20_000), Ok(0));
    }

    #[test]
    fn a_vanished_connection_stops_counting_when_its_last_window_ends() {
        // MemoryKv never drops expired keys, as production may not for hours.
        let store = MemoryKv::default();
        let cfg = config();
        join(&store, &cfg, &site("a"), id(1), 10_000).expect("join");
        assert_eq!(count(&store, &cfg, &site("a"), 59_999), Ok(1));
        assert_eq!(count(&store, &cfg, &site("a"), 60_000), Ok(0));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn leave_deletes_the_current_and_coming_windows_without_listing() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        let lease = join(&kv, &cfg, &site("a"), id(1), 20_000).expect("join");
        let (lease, _) = refresh(&kv, &cfg, &site("a"), &lease, 50_000).expect("refresh");
        assert_eq!(lease.windows, vec![1, 2, 3]);
        join(&kv, &cfg, &site("a"), id(2), 50_000).expect("join");
        leave(&kv, &clock_at(50_000), &cfg, &site("a"), &lease).expect("leave");
        assert_eq!(kv.counts().list, 0);
        assert_eq!(kv.counts().delete, 3);
        assert_eq!(count(&store, &cfg, &site("a"), 50_000), Ok(1));
        assert_eq!(count(&store, &cfg, &site("a"), 70_000), Ok(1));
    }

    /// `parse_key` as it was, searching for each '/': the fixed-width cut must agree with it.
    fn parse_key_by_search(rest: &str) -> Option<Parsed<'_>> {
        use crate::count::{country, page};
        let mut parts = rest.split('/');
        let (shard, id) = (parts.next()?, parts.next()?);
        let tail: Vec<&str> = parts.collect();
        let (page, country) = match tail.as_slice() {
            [] => (None, None),
            [p] if page::is_page_id(p) => (Some(*p), None),
            [c] if country::is_code(c) => (None, Some(*c)),
            [p, c] if page::is_page_id(p) && country::is_code(c) => (Some(*p), Some(*c)),
            _ => return None,
        };
        (is_presence_id(id) && shard_matches(shard, id)).then_some(Parsed { id, page, country })
    }

    #[test]
    fn keys_are_cut_at_fixed_widths_as_searching_would() {
        let id = format!("{:032x}", 0xabcd_u128 << 112 | 7);
        let shard = crate::count::presence::shard_of(&id);
        let page = "0123456789abcdef";
        let good = [
            format!("{shard}/{id}"),
            format!("{shard}/{id}/{page}"),
            format!("{shard}/{id}/DE"),
            format!("{shard}/{id}/{page}/DE"),
        ];
        let mut keys: Vec<String> = good.to_vec();
        // Every good key cut short, lengthened, and with each byte replaced.
        for key in &good {
            for n in 0..key.len() {
                keys.push(key[..n].to_string());
                for b in ["/", "0", "1", "g", "A", "é", "ab"] {
                    let mut k = key.clone();
                    k.replace_range(n..n + 1, b);
                    keys.push(k);
                }
            }
            keys.push(format!("{key}/"));
            keys.push(format!("{key}0"));
            keys.push(format!("{key}/FR"));
        }
        keys.push(format!("{shard}/{id}/{page}/{page}"));
        keys.push(format!("{shard}/{id}/DE/{page}"));
        keys.push(format!("0{shard}/{id}"));
        for key in &keys {
            assert_eq!(parse_key(key), parse_key_by_search(key), "{key:?}");
        }
        assert_eq!(
            parse_key(&good[3]),
            Some(Parsed {
                id: id.as_str(),
                page: Some(page),
                country: Some("DE")
            })
        );
    }

    #[test]
    fn counting_follows_every_list_page_and_skips_foreign_keys() {
        let store = MemoryKv::with_page_size(3);
        let cfg = config();
        for n in 0..10 {
            join(&store, &cfg, &site("a"), id(n), 1_000).expect("join");
        }
        for foreign in ["site/a/p/0/garbage", "site/a/p/0/0000000000000000/xyz"] {
            store
                .insert(foreign, b"", None, WriteMode::Overwrite)
                .expect("insert");
        }
        let kv = CountingKv::new(&store);
        let tally = tally(&kv, &site("a"), 0, "").expect("tally");
        assert_eq!(tally.live, 10);
        assert_eq!(tally.keys, 12);
        assert_eq!(kv.counts().list, 4);
    }

    #[test]
    fn shares_of_a_window_add_up_to_the_whole() {
        let store = MemoryKv::default();
        let cfg = config();
        let pages = ["0123456789abcdef", "fedcba9876543210"];
        for n in 0..200 {
            let page = (n % 3 != 0).then(|| pages[(n % 2) as usize].to_string());
            join_on(&store, &cfg, &site("a"), id(n), page, 1_000).expect("join");
        }
        let whole = tally(&store, &site("a"), 0, "").expect("tally");
        let mut summed = Tally::default();
        for shard in ["00", "01", "10", "11"] {
            summed.add(tally(&store, &site("a"), 0, shard).expect("tally"));
        }
        assert_eq!(whole.live, 200);
        assert_eq!(summed.live, whole.live);
        assert_eq!(summed.pages, whole.pages);
        assert_eq!(whole.pages.values().sum::<u64>(), 133);
    }

    #[test]
    fn a_reader_moving_between_pages_counts_once_even_before_the_old_key_goes() {
        let store = MemoryKv::default();
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
        // The new page's key is written first: a listing in between sees both.
        join_on(
            &store,
            &cfg,
            &site("a"),
            id(1),
            page("fedcba9876543210"),
            2_000,
        )
        .expect("join");
        let both = tally(&store, &site("a"), 0, "").expect("tally");
        assert_eq!((both.live, both.keys), (1, 2));
        move_to(
            &store,
            &clock_at(2_000),
            &cfg,
            &site("a"),
            &lease,
            page("fedcba9876543210"),
        )
        .expect("move");
        let moved = tally(&store, &site("a"), 0, "").expect("tally");
        assert_eq!(moved.live, 1);
        assert_eq!(
            moved.pages,
            BTreeMap::from([("fedcba9876543210".to_string(), 1)])
        );
    }

    #[test]
    fn readers_are_counted_by_country_from_the_same_keys() {
        use crate::count::presence::{join_as, Lease};
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        let countries = [Some("DE"), Some("US"), Some("US"), None];
        for (n, country) in countries.iter().enumerate() {
            let lease = Lease {
                id: id(n as u64),
                windows: Vec::new(),
                page: (n == 1).then(|| "0123456789abcdef".to_string()),
                country: country.map(str::to_string),
            };
            join_as(&kv, &cfg, &site("a"), lease, 1_000).expect("join");
        }
        // Two windows each, as without a country: no write of its own.
        assert_eq!(kv.counts().insert, 8);
        let counted = tally(&store, &site("a"), 0, "").expect("tally");
        assert_eq!(counted.live, 4);
        assert_eq!(
            counted.countries,
            CountryCounts::from([("DE", 1), ("US", 2)])
        );
        assert_eq!(counted.pages.values().sum::<u64>(), 1);
    }

    #[test]
    fn a_reconnect_with_its_presence_id_writes_the_same_keys() {
        let store = MemoryKv::default();
        let cfg = config();
        join(&store, &cfg, &site("a"), id(1), 1_000).expect("join");
        join(&store, &cfg, &site("a"), id(1), 5_000).expect("join again");
        assert_eq!(count(&store, &cfg, &site("a"), 5_000), Ok(1));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn sites_sharing_a_prefix_do_not_mix() {
        let store = MemoryKv::default();
        join(&store, &config(), &site("ab"), id(1), 0).expect("join");
        assert_eq!(count(&store, &config(), &site("a"), 0), Ok(0));
    }

    #[test]
    fn a_long_connection_has_one_key_in_every_window_and_is_always_counted() {
        let store = MemoryKv::default();
        let cfg = config();
        let kv = CountingKv::new(&store);
        let mut lease = join(&kv, &cfg, &site("a"), id(1), 7_000).expect("join");
        // Six hours of heartbeats, every 30 s, up to 10 s late.
        let mut t = 7_000;
        for beat in 1..=720u64 {
            t += 30_000 + (beat * 7_919) % 10_000 - 5_000;
            let (l, _) = refresh(&kv, &cfg, &site("a"), &lease, t).expect("refresh");
            lease = l;
            assert!(lease.windows.len() <= 3);
            for at in [t, t + 15_000] {
                let counted = tally(&store, &site("a"), window_of(&cfg, at), "").expect("tally");
                assert_eq!(counted.live, 1, "at {at} ms");
            }
        }
        let windows = window_of(&cfg, t) + 1;
        let inserts = u64::from(kv.counts().insert);
        assert!(
            inserts <= windows + 1,
            "{inserts} writes for {windows} windows"
        );
    }

    /// How long counting a listing takes per key, natively and inside Viceroy (Wasmtime, as on
    /// Compute): the simulator's factor for wasm is the ratio of the two; and what readers by
    /// country add to it (keys carrying a country against keys without)
    /// (`cargo test --release --lib census_cost -- --ignored --nocapture`, then the same with
    /// `--target wasm32-wasip1`).
    #[test]
    #[ignore]
    fn census_cost() {
        use crate::count::presence::key_in;
        let s = site("a");
        let countries = ["US", "DE", "JP", "BR", "SE", "IN", "FR", "GB"];
        let keys_of = |with_country: bool| {
            let mut keys: Vec<String> = (0..100_000u64)
                .map(|n| {
                    let page = (n % 3 == 0).then_some("0123456789abcdef");
                    let country = with_country.then(|| countries[(n % 8) as usize]);
                    key_in(&s, &id(n), 5, page, country)
                })
                .collect();
            keys.sort();
            keys
        };
        let window_part = window_prefix(&s, 5, "");
        let time = |keys: &[String]| {
            let start = std::time::Instant::now();
            let mut counter = Counter::default();
            for k in keys {
                counter.take(k.strip_prefix(&window_part));
            }
            let tally = counter.finish();
            assert_eq!(tally.live, 100_000);
            start.elapsed().as_nanos()
        };
        // Alternated, the best of many: a busy machine slows some runs, never speeds one up.
        let (plain, placed) = (keys_of(false), keys_of(true));
        let (mut without, mut with) = (u128::MAX, u128::MAX);
        for _ in 0..25 {
            without = without.min(time(&plain));
            with = with.min(time(&placed));
        }
        println!("census_cost: {} ns per key", without / 100_000);
        println!(
            "census_cost with countries: {} ns per key ({:+.1}%)",
            with / 100_000,
            (with as f64 / without as f64 - 1.0) * 100.0
        );
    }
}
