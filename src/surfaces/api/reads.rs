//! The API's reads: a site's figures from its snapshot (read once a second per POP, no
//! listing), from the store before any broadcast stored one, and its history.

use serde_json::json;

use crate::count::census::{self, CensusError};
use crate::count::floor::Floor;
use crate::count::snapshot::{self, Snapshot};
use crate::count::tally::Tally;
use crate::count::{history, peak, presence, totals};
use crate::platform::clock::iso8601;
use crate::platform::log::Line;
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// A figure of the site, from `found`, its snapshot (read once a second per POP, no listing);
/// a site no broadcast has stored a snapshot for yet is counted from the store once.
pub(super) fn read(
    services: &Services,
    site: &SiteId,
    found: Option<&Snapshot>,
    from_snapshot: impl Fn(&Snapshot) -> Option<u64>,
    from_totals: impl Fn(&totals::Settled) -> Option<u64>,
) -> Result<u64, HttpError> {
    let unavailable = |what: String| unavailable(services, site, &what);
    if let Some(value) = found.and_then(&from_snapshot) {
        return Ok(value);
    }
    if found.is_none() && known_empty(services, site) {
        return Ok(0);
    }
    let now = services.clock.now_ms();
    let settled =
        totals::settle(services.kv, site, now, false).map_err(|e| unavailable(e.to_string()))?;
    let from_totals = from_totals(&settled);
    if from_totals.is_some_and(|v| v > 0) {
        return Ok(from_totals.unwrap_or_default());
    }
    let live = count_now(services, site, now)
        .map(|t| t.live)
        .map_err(|e| unavailable(e.to_string()))?;
    if found.is_none() && settled.total == 0 && live == 0 {
        note_empty(services, site);
    }
    Ok(from_totals.unwrap_or(live))
}

/// How long a POP remembers that a site no broadcast has counted had no readers and no visits
/// (an unused or invented site id): its reads cost the store a count once per POP in this time,
/// however many ask. A reader joining makes a snapshot within a broadcast interval, and a site
/// with a snapshot is never answered from here.
const EMPTY_SITE_MS: u64 = 10_000;

fn empty_key(site: &SiteId) -> String {
    format!("empty-site/{site}")
}

fn known_empty(services: &Services, site: &SiteId) -> bool {
    services.cache.get(&empty_key(site)).is_some()
}

fn note_empty(services: &Services, site: &SiteId) {
    services.cache.set(&empty_key(site), b"1", EMPTY_SITE_MS);
}

/// Counts the site's current window (a site no broadcast has counted yet: a small one, so
/// from this execution alone).
fn count_now(services: &Services, site: &SiteId, now: u64) -> Result<Tally, CensusError> {
    census::count(
        services,
        site,
        presence::window_of(services.config, now),
        None,
    )
}

/// The readers of one page (by page id): from the snapshot like [`read`]; None for a page
/// beyond the site's busiest pages.
pub(super) fn read_page(
    services: &Services,
    site: &SiteId,
    found: Option<&Snapshot>,
    page_id: &str,
) -> Result<Option<u64>, HttpError> {
    let unavailable = |what: String| unavailable(services, site, &what);
    match found {
        Some(last) if last.outlived(services.clock.now_ms(), services.config) => Ok(Some(0)),
        Some(last) => Ok(last.page_count(page_id)),
        None if known_empty(services, site) => Ok(Some(0)),
        None => {
            let now = services.clock.now_ms();
            let census = count_now(services, site, now).map_err(|e| unavailable(e.to_string()))?;
            Ok(Some(census.pages.get(page_id).copied().unwrap_or(0)))
        }
    }
}

/// How long a POP keeps a history answer: its points are minutes.
pub(super) const HISTORY_CACHE_MS: u64 = 60_000;

/// A range of the site's history as JSON, computed once per POP, range, minute and broadcast
/// (an answer changes only when a minute ends or a broadcast publishes).
pub(super) fn read_history(
    services: &Services,
    site: &SiteId,
    range: history::Range,
) -> Result<serde_json::Value, HttpError> {
    let now = services.clock.now_ms();
    let current = snapshot::cached(services, site).ok().flatten();
    let cache_key = format!(
        "history/{site}/{}/{}/{}",
        range.name(),
        peak::minute_of(now),
        current.as_ref().map_or(0, |s| s.slot_end_ms)
    );
    let mut failure = None;
    let mut compute = || {
        let floor = Floor::of(services, site);
        let quiet = history::Quiet::of(services.config);
        match history::read(
            services.kv,
            site,
            range,
            now,
            current.as_ref(),
            floor,
            quiet,
        ) {
            Ok(h) => {
                let today = current
                    .as_ref()
                    .map(|s| floor.show(peak::today_peak(s.last(), now)));
                let mut body = json!({
                    "siteId": site.as_str(),
                    "range": range.name(),
                    "start": iso8601(h.start_minute * 60_000),
                    "stepSeconds": h.step_minutes * 60,
                    "points": h.points,
                    "peak": h.points.iter().flatten().max(),
                    "todayPeak": today.map(|p| p.value),
                    "timestamp": iso8601(now),
                });
                if let Some(min) = floor.min() {
                    body["minCount"] = json!(min);
                    body["belowMin"] = json!(h.below_min);
                    body["todayPeakBelowMin"] = json!(today.is_some_and(|p| p.below_min));
                }
                Some(body.to_string().into_bytes())
            }
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    };
    let bytes = services
        .cache
        .get_or_compute(&cache_key, HISTORY_CACHE_MS, &mut compute);
    match (bytes, failure) {
        (Some(b), _) => {
            serde_json::from_slice(&b).map_err(|e| unavailable(services, site, &e.to_string()))
        }
        (None, e) => Err(unavailable(
            services,
            site,
            &e.map_or("cache".to_string(), |e| e.to_string()),
        )),
    }
}

/// The site's snapshot, as this POP knows it (one read for all of a request's figures). When
/// the store cannot be asked (it failed, or the reader's share of store reads is spent and the
/// POP's one-second copy has lapsed), the newest snapshot this POP has seen answers: a reader
/// behind a busy shared address is not refused what the POP already knows.
pub(super) fn snapshot_of(
    services: &Services,
    site: &SiteId,
) -> Result<Option<Snapshot>, HttpError> {
    match snapshot::cached(services, site) {
        Ok(found) => Ok(found),
        Err(e) => match snapshot::last_seen(services.cache, site) {
            Some(last) => Ok(Some(last)),
            None => Err(unavailable(services, site, &e.to_string())),
        },
    }
}

/// Readers online now: the snapshot's count (0 once it outlived its readers), or counted from
/// the store before any broadcast stored one.
pub(super) fn read_online(
    services: &Services,
    site: &SiteId,
    found: Option<&Snapshot>,
) -> Result<u64, HttpError> {
    let now_ms = services.clock.now_ms();
    read(
        services,
        site,
        found,
        |s| Some(s.count_at(now_ms, services.config)),
        |_| None,
    )
}

/// A read the store could not answer: logged, and 503 to the caller.
pub(super) fn unavailable(services: &Services, site: &SiteId, what: &str) -> HttpError {
    services.log.emit(&Line::Detail {
        event: "api-read-failed",
        site,
        detail: what,
    });
    HttpError::Unavailable("the store could not be read; try again".into())
}
