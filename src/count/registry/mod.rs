//! The site registry: which sites this service serves, and each one's settings
//! ([`SiteEntry`]: the page origins that may connect, the privacy floor, the page prefixes it
//! counts). One KV key a site, `registry/<siteId>`, written by the admin API (`/admin/sites`,
//! what the `liveuser sites` command calls): any number of sites (10,000 are ten list pages
//! for a listing), and a change needs no deploy. Each POP reads a site's entry at most once
//! every [`FRESH_MS`] (so a change is in force everywhere within seconds), and keeps the last
//! entry it read for a day, which answers while the store cannot be read.
//!
//! A site without an entry is refused (404 `unknown_site`) before anything is stored or
//! subscribed, unless the config says `unregistered_sites = serve` (the local stack does, so
//! any site id works there, as in the original; a registered site's settings apply either way).

pub mod entry;

use crate::platform::config::UnregisteredSites;
use crate::platform::kv::{KvError, KvStore, WriteMode, LIST_PAGE};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

pub use entry::{EntryError, SiteEntry};

/// Where entries live in the KV store.
const KEY_PREFIX: &str = "registry/";

/// How long a POP answers from the entry it read, before reading it again.
pub const FRESH_MS: u64 = 5_000;
/// How long a POP keeps the last entry it read, for when the store cannot be read.
const KEPT_MS: u64 = 86_400_000;

/// A site's entry, in the store and (as read) in the POP's cache.
fn key(site: &SiteId) -> String {
    format!("{KEY_PREFIX}{site}")
}

fn kept_key(site: &SiteId) -> String {
    format!("registry-kept/{site}")
}

/// An entry as the POP's cache holds it: `none` for a site known to be unregistered.
fn cached_form(entry: Option<&SiteEntry>) -> Vec<u8> {
    entry.map_or_else(|| b"none".to_vec(), |e| e.encode().into_bytes())
}

fn from_cached(bytes: &[u8]) -> Option<SiteEntry> {
    (bytes != b"none")
        .then(|| SiteEntry::decode(bytes))
        .flatten()
}

/// Makes `entry` what this POP answers for `site` (after reading it, or writing it).
fn remember(services: &Services, site: &SiteId, entry: Option<&SiteEntry>) {
    let bytes = cached_form(entry);
    services.cache.set(&key(site), &bytes, FRESH_MS);
    if services.cache.get(&kept_key(site)).as_deref() != Some(bytes.as_slice()) {
        services.cache.set(&kept_key(site), &bytes, KEPT_MS);
    }
}

/// The site's entry as this POP knows it; `Ok(None)`: not registered. An error only when the
/// store cannot be read and this POP has read nothing of the site for a day.
pub fn entry(services: &Services, site: &SiteId) -> Result<Option<SiteEntry>, KvError> {
    if let Some(bytes) = services.cache.get(&key(site)) {
        return Ok(from_cached(&bytes));
    }
    match services.kv.lookup(&key(site)) {
        Ok(found) => {
            // An entry this version cannot read is no registration (refused, not served
            // without the floor or origins it may set).
            let entry = found.and_then(|e| SiteEntry::decode(&e.value));
            remember(services, site, entry.as_ref());
            Ok(entry)
        }
        Err(e) => {
            let kept = services.cache.get(&kept_key(site)).map(|b| from_cached(&b));
            services.log.emit(&Line::RegistryKept {
                site,
                registered: kept.as_ref().map(Option::is_some),
            });
            kept.ok_or(e)
        }
    }
}

/// Registers `site` with `entry`, or replaces its entry.
pub fn put(services: &Services, site: &SiteId, entry: &SiteEntry) -> Result<(), KvError> {
    services.kv.insert(
        &key(site),
        entry.encode().as_bytes(),
        None,
        WriteMode::Overwrite,
    )?;
    remember(services, site, Some(entry));
    Ok(())
}

/// Unregisters `site`: whether it was registered. (What it stored lapses by its TTLs.)
pub fn remove(services: &Services, site: &SiteId) -> Result<bool, KvError> {
    let was = services.kv.lookup(&key(site))?.is_some();
    if was {
        services.kv.delete(&key(site))?;
    }
    remember(services, site, None);
    Ok(was)
}

/// One page of registered site ids (up to 1,000), in order, and the cursor of the next.
pub fn list(
    kv: &dyn KvStore,
    cursor: Option<&str>,
) -> Result<(Vec<SiteId>, Option<String>), KvError> {
    let page = kv.list(KEY_PREFIX, cursor, LIST_PAGE)?;
    let sites = page
        .keys
        .iter()
        .filter_map(|k| k.strip_prefix(KEY_PREFIX))
        .filter_map(|s| SiteId::parse(s).ok())
        .collect();
    Ok((sites, page.next_cursor))
}

/// The site's entry, or a refusal: 404 `unknown_site` for a site not registered (unless
/// unregistered sites are served: then its entry is the empty one), 503 when the registry
/// cannot be read.
pub fn check_site(services: &Services, site: &SiteId) -> Result<SiteEntry, HttpError> {
    let serve_any = services.config.unregistered_sites == UnregisteredSites::Serve;
    match entry(services, site) {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) if serve_any => Ok(SiteEntry::default()),
        Ok(None) => Err(HttpError::UnknownSite),
        Err(_) if serve_any => Ok(SiteEntry::default()),
        Err(e) => Err(HttpError::Unavailable(format!(
            "the site registry could not be read; try again ({e})"
        ))),
    }
}

/// The site's privacy floor (see `floor`); an error when the registry cannot be read (the floor
/// keeps its last value then).
pub fn min_count(services: &Services, site: &SiteId) -> Result<Option<u64>, KvError> {
    Ok(entry(services, site)?.and_then(|e| e.min_count))
}

/// The page prefixes the site counts pages under; `None` counts every page (also while the
/// registry cannot be read).
pub fn page_prefixes(services: &Services, site: &SiteId) -> Option<Vec<String>> {
    entry(services, site).ok().flatten()?.pages
}

/// Refuses a page origin that the site's entry does not list. Sites without a list take every
/// origin, as the original does.
pub fn check_origin(
    entry: &SiteEntry,
    site: &SiteId,
    origin: Option<&str>,
) -> Result<(), HttpError> {
    let Some(allowed) = &entry.origins else {
        return Ok(());
    };
    let origin = origin.map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase());
    match origin {
        Some(o) if allowed.contains(&o) => Ok(()),
        Some(o) => Err(HttpError::Forbidden(format!(
            "origin {o} may not connect to site {site}"
        ))),
        None => Err(HttpError::Forbidden(format!(
            "site {site} only takes connections from its own pages (no Origin header)"
        ))),
    }
}

/// Registers `site` with its entry given as JSON, for tests.
#[cfg(test)]
pub fn register(t: &crate::platform::testing::TestServices, site: &str, entry: &str) {
    let site = SiteId::parse(site).expect("a site id");
    let entry = SiteEntry::from_json(entry.as_bytes()).expect("an entry");
    put(&t.services(), &site, &entry).expect("registered");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::{FailingKv, TestServices};

    fn shop() -> SiteId {
        SiteId::parse("shop").expect("site")
    }

    fn registered(t: &TestServices) -> SiteEntry {
        let entry =
            SiteEntry::from_json(br#"{"origins": ["https://shop.example"], "minCount": 3}"#)
                .expect("entry");
        put(&t.services(), &shop(), &entry).expect("put");
        entry
    }

    #[test]
    fn only_registered_sites_are_served_unless_the_config_serves_any() {
        let mut t = TestServices::new();
        t.config.unregistered_sites = UnregisteredSites::Refuse;
        let err = check_site(&t.services(), &shop()).expect_err("refused");
        assert_eq!((err.status(), err.code()), (404, "unknown_site"));
        // The POP remembers it is unregistered, but a registration here is in force at once.
        let entry = registered(&t);
        assert_eq!(check_site(&t.services(), &shop()), Ok(entry.clone()));
        assert_eq!(min_count(&t.services(), &shop()), Ok(Some(3)));
        t.config.unregistered_sites = UnregisteredSites::Serve;
        let other = SiteId::parse("other").expect("site");
        assert_eq!(check_site(&t.services(), &other), Ok(SiteEntry::default()));
        assert_eq!(
            check_site(&t.services(), &shop()),
            Ok(entry),
            "its settings apply"
        );
    }

    #[test]
    fn a_pop_reads_an_entry_once_in_a_while_and_keeps_it_while_the_store_fails() {
        let mut t = TestServices::new();
        t.config.unregistered_sites = UnregisteredSites::Refuse;
        let now = 1_800_000_000_000;
        t.set_time(now);
        let entry = registered(&t);
        // Another POP removes it: this one sees that within FRESH_MS.
        let elsewhere = crate::platform::testing::MemoryCache::default();
        assert_eq!(
            remove(&t.services_with_cache(&elsewhere), &shop()),
            Ok(true)
        );
        assert_eq!(check_site(&t.services(), &shop()), Ok(entry.clone()));
        t.set_time(now + FRESH_MS + 1);
        assert!(check_site(&t.services(), &shop()).is_err());
        // Registered again; then the store fails: the last entry read answers.
        put(&t.services_with_cache(&elsewhere), &shop(), &entry).expect("put");
        t.set_time(now + 2 * FRESH_MS + 2);
        assert_eq!(check_site(&t.services(), &shop()), Ok(entry.clone()));
        t.set_time(now + 3 * FRESH_MS + 3);
        let failing = FailingKv;
        let services = crate::platform::Services {
            kv: &failing,
            ..t.services()
        };
        assert_eq!(check_site(&services, &shop()), Ok(entry));
        assert!(t
            .log
            .lines()
            .contains(&"liveuser registry-kept site=shop registered=true".to_string()));
        let never = SiteId::parse("never").expect("site");
        let err = check_site(&services, &never).expect_err("unreadable");
        assert_eq!(err.status(), 503);
        assert!(min_count(&services, &never).is_err());
    }

    #[test]
    fn listing_pages_through_every_site() {
        let t = TestServices::new();
        // The registry an owner of 10,000 sites has: ten list pages, no limit in the way.
        for n in 0..10_000 {
            let site = SiteId::parse(&format!("site-{n:05}")).expect("site");
            put(&t.services(), &site, &SiteEntry::default()).expect("put");
        }
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let (sites, next) = list(&t.kv, cursor.as_deref()).expect("list");
            pages += 1;
            all.extend(sites);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!((all.len(), pages), (10_000, 10));
        assert_eq!(all[0].as_str(), "site-00000");
        assert_eq!(t.kv.keys_without_ttl().len(), 10_000, "registrations stay");
    }

    #[test]
    fn origins_are_checked_against_the_entry() {
        let site = shop();
        let open = SiteEntry::default();
        assert_eq!(check_origin(&open, &site, None), Ok(()));
        let listed =
            SiteEntry::from_json(br#"{"origins": ["https://Shop.example/"]}"#).expect("entry");
        assert_eq!(
            check_origin(&listed, &site, Some("https://shop.example")),
            Ok(())
        );
        assert_eq!(
            check_origin(&listed, &site, Some("https://SHOP.example/")),
            Ok(())
        );
        for bad in [Some("https://evil.example"), None] {
            assert_eq!(
                check_origin(&listed, &site, bad).map_err(|e| e.status()),
                Err(403)
            );
        }
    }
}
