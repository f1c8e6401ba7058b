//! The stats API, compatible with the original's:
//!
//! - `GET /api/total/{siteId}` → `{"siteId","totalCount","timestamp"}`
//! - `GET /api/online/{siteId}` → `{"siteId","online","timestamp"}`; with `?page=…` also
//!   `"pageOnline"`: that page's readers, or null beyond the site's busiest pages (see `page`);
//!   a site with a privacy floor adds `"minCount"` and `"belowMin"` (see `floor`)
//! - `GET /badge/{siteId}.svg` → an SVG badge ("online | 42"); `GET /api/shields/{siteId}` →
//!   the same in shields.io's endpoint-badge JSON (see `badge`)
//! - `GET /api/history/{siteId}?range=1h|24h|7d` → the peaks of each minute (each 10 minutes
//!   for 7d) and today's peak (see `history` and `peak`)
//! - `POST /api/reset/{siteId}` → `{"siteId","message","timestamp"}` (admin token)
//! - `PUT /api/total/{siteId}` with `{"totalCount":N}` → seeds a total (admin token)
//!
//! GET answers carry CORS headers so any page can read them; `OPTIONS` answers preflights.

mod admin_writes;
mod reads;

use http::{header, Method, Request, Response};
use serde_json::json;

use crate::count::floor::Floor;
use crate::count::registry::check_site;
use crate::count::snapshot::Freshness;
use crate::count::{broadcast, history, page, peak};
use crate::platform::clock::iso8601;
use crate::platform::Services;
use crate::surfaces::access::{charged, with_cors};
use crate::surfaces::admin::authorize;
use crate::surfaces::params::PAGE_PARAM;
use crate::surfaces::{badge, Handled};
use crate::wire::error::HttpError;
use crate::wire::request;
use crate::wire::response::{self, finish};
use crate::wire::site::SiteId;

use admin_writes::{seed_value, write_total};
use reads::{read, read_history, read_online, read_page, snapshot_of};

/// One API endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Total,
    Online,
    Reset,
    Badge,
    Shields,
    History,
}

impl Endpoint {
    fn from_path(path: &str) -> Option<(Endpoint, &str)> {
        [
            ("/api/total/", Endpoint::Total),
            ("/api/online/", Endpoint::Online),
            ("/api/reset/", Endpoint::Reset),
            ("/api/shields/", Endpoint::Shields),
            ("/api/history/", Endpoint::History),
            ("/badge/", Endpoint::Badge),
        ]
        .into_iter()
        .find_map(|(prefix, endpoint)| path.strip_prefix(prefix).map(|site| (endpoint, site)))
        .and_then(|(endpoint, site)| match endpoint {
            // `/badge/{siteId}.svg`
            Endpoint::Badge => site.strip_suffix(".svg").map(|site| (endpoint, site)),
            _ => Some((endpoint, site)),
        })
    }

    fn allow(self) -> &'static str {
        match self {
            Endpoint::Total => "GET, PUT, OPTIONS",
            Endpoint::Online | Endpoint::Badge | Endpoint::Shields | Endpoint::History => {
                "GET, OPTIONS"
            }
            Endpoint::Reset => "POST",
        }
    }

    /// Whether `method` is one this endpoint takes.
    fn accepts(self, method: &Method) -> bool {
        matches!(
            (self, method),
            (
                Endpoint::Total
                    | Endpoint::Online
                    | Endpoint::Badge
                    | Endpoint::Shields
                    | Endpoint::History,
                &Method::GET | &Method::OPTIONS
            ) | (Endpoint::Total, &Method::PUT)
                | (Endpoint::Reset, &Method::POST)
        )
    }
}

/// Whether `path` belongs to the API.
pub fn owns(path: &str) -> bool {
    Endpoint::from_path(path).is_some()
}

/// Answers an API request. Order: method, site id, authorization, then the store. Reset and
/// seed also plan a broadcast, so every page shows the new total.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let Some((endpoint, raw_site)) = Endpoint::from_path(req.uri().path()) else {
        return Err(HttpError::NotFound);
    };
    if !endpoint.accepts(req.method()) {
        return Err(HttpError::MethodNotAllowed {
            allow: endpoint.allow(),
        });
    }
    let site = SiteId::parse(raw_site)?;
    check_site(services, &site)?;
    let now = iso8601(services.clock.now_ms());
    match (endpoint, req.method()) {
        (_, &Method::OPTIONS) => Ok(preflight(endpoint).into()),
        // Charged to the client only when the POP's cache cannot answer.
        (_, &Method::GET) => charged(req, services, |services| {
            get(endpoint, req, services, &site)
        }),
        (Endpoint::Total, _) => {
            authorize(req, services)?;
            let value = seed_value(req.body())?;
            write_total(services, &site, value)?;
            Ok(Handled {
                response: response::json(
                    200,
                    &json!({"siteId": site.as_str(), "totalCount": value, "timestamp": now}),
                ),
                broadcast: broadcast::schedule(services, &site),
                log_fields: String::new(),
            })
        }
        (Endpoint::Reset, _) => {
            authorize(req, services)?;
            write_total(services, &site, 0)?;
            Ok(Handled {
                response: response::json(
                    200,
                    &json!({"siteId": site.as_str(), "message": "Total count reset successfully", "timestamp": now}),
                ),
                broadcast: broadcast::schedule(services, &site),
                log_fields: String::new(),
            })
        }
        _ => Err(HttpError::MethodNotAllowed {
            allow: endpoint.allow(),
        }),
    }
}

/// Answers a GET of a public read.
fn get(
    endpoint: Endpoint,
    req: &Request<Vec<u8>>,
    services: &Services,
    site: &SiteId,
) -> Result<Handled, HttpError> {
    let now_ms = services.clock.now_ms();
    let now = iso8601(now_ms);
    match endpoint {
        Endpoint::Total => {
            let found = snapshot_of(services, site)?;
            let total = read(
                services,
                site,
                found.as_ref(),
                |s| s.total,
                |t| Some(t.total),
            )?;
            let total = Floor::of(services, site).total(total);
            Ok(
                public(json!({"siteId": site.as_str(), "totalCount": total, "timestamp": now}))
                    .into(),
            )
        }
        Endpoint::Online => {
            // `Some(None)`: a page the site does not count (outside its page prefixes).
            let page = request::query_value(req.uri().query(), PAGE_PARAM)
                .map(|p| page::counted_id(services, site, &p))
                .transpose()?;
            let floor = Floor::of(services, site);
            let found = snapshot_of(services, site)?;
            let online_exact = read_online(services, site, found.as_ref())?;
            let online = floor.show(online_exact);
            let fresh = Freshness::of(found.as_ref(), now_ms, services.config);
            let mut body = json!({
                "siteId": site.as_str(),
                "online": online.value,
                "timestamp": now,
                "asOf": iso8601(fresh.as_of_ms),
                "ageMs": fresh.age_ms,
                "stale": fresh.stale,
            });
            let today = found
                .as_ref()
                .map(|s| floor.show(peak::today_peak(s.last(), now_ms)));
            body["todayPeak"] = json!(today.map(|p| p.value));
            if let Some(min) = floor.min() {
                body["minCount"] = json!(min);
                body["belowMin"] = json!(online.below_min);
                body["todayPeakBelowMin"] = json!(today.is_some_and(|p| p.below_min));
            }
            if let Some(page_id) = page {
                let count = match page_id {
                    Some(id) => read_page(services, site, found.as_ref(), &id)?,
                    None => None,
                };
                let pages = found.as_ref().map_or(&[][..], |s| s.pages.as_slice());
                let page = floor.show_page(online_exact, pages, count);
                body["pageOnline"] = json!(page.map(|p| p.value));
                if floor.min().is_some() {
                    body["pageBelowMin"] = json!(page.is_some_and(|p| p.below_min));
                }
            }
            Ok(public(body).into())
        }
        Endpoint::History => {
            let range = request::query_value(req.uri().query(), "range").unwrap_or_default();
            let range = history::Range::parse(&range).ok_or(HttpError::InvalidParameter {
                code: "invalid_range",
                message: "range must be 1h, 24h or 7d".into(),
            })?;
            Ok(public(read_history(services, site, range)?).into())
        }
        Endpoint::Badge | Endpoint::Shields => {
            let style = badge::Style::from_query(req.uri().query())?;
            let floor = Floor::of(services, site);
            let found = snapshot_of(services, site)?;
            let fresh = Freshness::of(found.as_ref(), now_ms, services.config);
            let (style, message) = if fresh.stale {
                (style.stale(), badge::STALE.to_string())
            } else {
                let count = floor.show(read_online(services, site, found.as_ref())?);
                (style, badge::message(count))
            };
            if endpoint == Endpoint::Shields {
                return Ok(with_freshness(public(badge::shields(&style, &message)), fresh).into());
            }
            let builder = Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, badge::CONTENT_TYPE)
                .header(header::CACHE_CONTROL, badge::CACHE_CONTROL)
                .header("X-Content-Type-Options", "nosniff")
                // Opened on its own, the image may run nothing and load nothing.
                .header(
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'",
                );
            let svg = finish(builder, badge::svg(&style, &message).into_bytes());
            Ok(with_freshness(with_cors(svg), fresh).into())
        }
        Endpoint::Reset => Err(HttpError::MethodNotAllowed {
            allow: endpoint.allow(),
        }),
    }
}

/// The badge's and shields' freshness, in headers (the images and shields' schema have no room
/// for it): when the count was taken, and how old it is.
fn with_freshness(mut resp: Response<Vec<u8>>, fresh: Freshness) -> Response<Vec<u8>> {
    let headers = resp.headers_mut();
    for (name, value) in [
        (AS_OF_HEADER, iso8601(fresh.as_of_ms)),
        (AGE_HEADER, fresh.age_ms.to_string()),
    ] {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static("X-LiveUser-As-Of, X-LiveUser-Age-Ms"),
    );
    resp
}

/// When a badge's count was taken (ISO 8601), and its age in milliseconds.
pub const AS_OF_HEADER: &str = "x-liveuser-as-of";
pub const AGE_HEADER: &str = "x-liveuser-age-ms";

fn public(value: serde_json::Value) -> Response<Vec<u8>> {
    with_cors(response::json(200, &value))
}

fn preflight(endpoint: Endpoint) -> Response<Vec<u8>> {
    let builder = Response::builder()
        .status(204)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, endpoint.allow())
        .header(header::ACCESS_CONTROL_MAX_AGE, "86400");
    finish(builder, Vec::new())
}

#[cfg(test)]
mod tests;
