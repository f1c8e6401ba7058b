//! The admin writes: `PUT /api/total/{siteId}` seeds a total and `POST /api/reset/{siteId}`
//! resets it, both behind the admin token.

use serde::Deserialize;

use crate::count::snapshot::{self, Snapshot};
use crate::count::totals;
use crate::platform::log::Line;
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// The largest `PUT /api/total` body accepted.
pub(super) const MAX_BODY: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(rename = "totalCount")]
    total_count: u64,
}

pub(super) fn seed_value(body: &[u8]) -> Result<u64, HttpError> {
    if body.len() > MAX_BODY {
        return Err(HttpError::PayloadTooLarge { max: MAX_BODY });
    }
    serde_json::from_slice::<Seed>(body)
        .map(|s| s.total_count)
        .map_err(|e| {
            HttpError::BadRequest(format!(
                "body must be {{\"totalCount\": <whole number>}}: {e}"
            ))
        })
}

pub(super) fn write_total(services: &Services, site: &SiteId, value: u64) -> Result<(), HttpError> {
    totals::set(services.kv, services.clock, site, value).map_err(|e| {
        services.log.emit(&Line::Detail {
            event: "total-write-failed",
            site,
            detail: &e.to_string(),
        });
        HttpError::Unavailable("the total could not be written; try again".into())
    })?;
    // This POP answers the new total at once; the broadcast this plans stores it for all.
    let known = snapshot::cached(services, site).ok().flatten();
    let updated = Snapshot {
        total: Some(value),
        ..known.unwrap_or_default()
    };
    snapshot::remember(services.cache, site, &updated);
    Ok(())
}
