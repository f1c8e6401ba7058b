//! What a site's owner sees on its dashboard: the live count, total visits, today's peak, the
//! busiest pages and readers by country, as one JSON view made from the site's snapshot.
//!
//! Every broadcast that tells the pages anything also publishes this view on the site's
//! dashboard channel ([`channel`]): a channel of its own, so readers' pages, which never
//! subscribe to it, pay nothing for it, and an open dashboard is told exactly what the API would
//! answer, within a slot. The view is the owner's: the count, total and pages are exact; the
//! privacy floor applies to countries (see `country`), the one figure that says where readers
//! are.

use serde_json::{json, Value};

use crate::count::country;
use crate::count::floor::Floor;
use crate::count::snapshot::Snapshot;
use crate::platform::kv::{KvError, WriteMode};
use crate::platform::Services;
use crate::wire::site::SiteId;

/// How long a POP uses a dashboard key it read before reading it again (as the registry's
/// entries): a new key is in force everywhere within this.
pub const KEY_FRESH_MS: u64 = 5_000;

/// Where a site's dashboard key is kept: beside its registry entry, not in it, so an entry
/// stays one that every version of the service reads.
fn key_key(site: &SiteId) -> String {
    format!("dashboard-key/{site}")
}

/// The key that opens `site`'s dashboard, if it has one (read at most every
/// [`KEY_FRESH_MS`] per POP).
pub fn key(services: &Services, site: &SiteId) -> Result<Option<String>, KvError> {
    if let Some(cached) = services.cache.get(&key_key(site)) {
        return Ok(as_key(cached));
    }
    let key = stored_key(services, site)?;
    let bytes = key.clone().unwrap_or_default().into_bytes();
    services.cache.set(&key_key(site), &bytes, KEY_FRESH_MS);
    Ok(key)
}

/// `site`'s dashboard key as it stands, made now (128 random bits) when it has none or when
/// `replace` asks for a new one.
pub fn make_key(services: &Services, site: &SiteId, replace: bool) -> Result<String, KvError> {
    if !replace {
        if let Some(kept) = stored_key(services, site)? {
            return Ok(kept);
        }
    }
    let [a, b] = services.ids.random_u64s();
    let key = format!("{a:016x}{b:016x}");
    services
        .kv
        .insert(&key_key(site), key.as_bytes(), None, WriteMode::Overwrite)?;
    services
        .cache
        .set(&key_key(site), key.as_bytes(), KEY_FRESH_MS);
    Ok(key)
}

/// Removes `site`'s dashboard key (the site was removed).
pub fn forget_key(services: &Services, site: &SiteId) -> Result<(), KvError> {
    services.kv.delete(&key_key(site))?;
    services.cache.set(&key_key(site), b"", KEY_FRESH_MS);
    Ok(())
}

/// The key the store holds for `site` (not this POP's copy).
fn stored_key(services: &Services, site: &SiteId) -> Result<Option<String>, KvError> {
    Ok(services
        .kv
        .lookup(&key_key(site))?
        .and_then(|e| as_key(e.value)))
}

/// Stored bytes as a dashboard key (32 hex digits), if they are one.
fn as_key(bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes)
        .ok()
        .filter(|k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The site's dashboard channel: only dashboards subscribe to it.
pub fn channel(site: &SiteId) -> String {
    site.dashboard_channel()
}

/// The dashboard's view of `snapshot` (at `now_ms`: a count that outlived its readers is 0, and
/// `live` says whether it is current).
pub fn view(snapshot: &Snapshot, floor: Floor, live: bool) -> Value {
    serde_json::to_value(View::of(snapshot, floor, live)).unwrap_or_else(|_| json!({}))
}

/// The message a broadcast publishes on the dashboard channel (serialized from the view
/// itself: a broadcast makes one or two a slot).
pub fn message(snapshot: &Snapshot, floor: Floor) -> String {
    serde_json::to_string(&View::of(snapshot, floor, true)).unwrap_or_default()
}

/// The view as it is sent: `pages` and `countries` as `[name, count]` pairs, busiest first.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct View<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    count: u64,
    total: Option<u64>,
    peak_today: Option<u64>,
    slot: u64,
    pages: Vec<(&'a str, u64)>,
    countries: Vec<(String, u64)>,
}

impl<'a> View<'a> {
    fn of(snapshot: &'a Snapshot, floor: Floor, live: bool) -> View<'a> {
        let count = if live { snapshot.count } else { 0 };
        let countries = if live {
            country::shown(&snapshot.countries, count, floor)
        } else {
            Vec::new()
        };
        let mut pages: Vec<(&str, u64)> = if live {
            let named = snapshot.pages.iter().filter(|(_, n)| *n > 0);
            named.map(|(id, n)| (id.as_str(), *n)).collect()
        } else {
            Vec::new()
        };
        pages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        View {
            kind: "dashboard",
            count,
            total: snapshot.total,
            peak_today: snapshot.peak.as_ref().map(|p| p.day_peak.max(count)),
            slot: snapshot.slot_end_ms,
            pages,
            countries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::peak::Peak;

    fn snapshot() -> Snapshot {
        Snapshot {
            slot_end_ms: 60_000,
            count: 30,
            total: Some(900),
            pages: vec![
                ("0123456789abcdef".into(), 4),
                ("fedcba9876543210".into(), 20),
            ],
            peak: Some(Peak {
                minute: 1,
                minute_peak: 30,
                day_peak: 41,
            }),
            countries: vec![("DE".into(), 3), ("US".into(), 25)],
        }
    }

    #[test]
    fn the_view_is_exact_but_for_countries_below_the_floor() {
        let view = view(&snapshot(), Floor::at(5), true);
        assert_eq!(view["count"], 30);
        assert_eq!(view["total"], 900);
        assert_eq!(view["peakToday"], 41);
        assert_eq!(
            view["pages"],
            json!([["fedcba9876543210", 20], ["0123456789abcdef", 4]])
        );
        // Germany's 3 are below the floor of 5: with the 2 of no known country, "other".
        assert_eq!(view["countries"], json!([["US", 25], ["other", 5]]));
        let whole = super::view(&snapshot(), Floor::default(), true);
        assert_eq!(
            whole["countries"],
            json!([["US", 25], ["DE", 3], ["other", 2]])
        );
    }

    #[test]
    fn a_snapshot_that_outlived_its_readers_shows_nobody() {
        let view = view(&snapshot(), Floor::default(), false);
        assert_eq!(view["count"], 0);
        assert_eq!(view["pages"], json!([]));
        assert_eq!(view["countries"], json!([]));
        assert_eq!(view["total"], 900, "visits stay");
    }

    #[test]
    fn the_dashboard_has_a_channel_of_its_own() {
        let site = SiteId::parse("a").expect("site");
        assert_ne!(channel(&site), site.channel());
        assert_ne!(channel(&site), site.totals_channel());
    }
}
