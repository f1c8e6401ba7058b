//! The stats API, compatible with the original's:
//!
//! - `GET /api/total/{siteId}` → `{"siteId","totalCount","timestamp"}`
//! - `GET /api/online/{siteId}` → `{"siteId","online","timestamp"}`; with `?page=…` also
//!   `"pageOnline"`: that page's readers, or null beyond the site's busiest pages (see `page`);
//!   a site with a privacy floor adds `"minCount"` and `"belowMin"` (see `floor`)
//! - `GET /badge/{siteId}.svg` → an SVG badge ("online | 42"); `GET /api/shields/{siteId}` →
//!   the same in shields.io's endpoint-badge JSON (see `badge`)
//! - `GET /api/history/{siteId}?range=1h|24h|7d` → the peaks of each minute (each 10 minutes
//!   for 7d) and today's peak (see `history`)
//! - `POST /api/reset/{siteId}` → `{"siteId","message","timestamp"}` (admin token)
//! - `PUT /api/total/{siteId}` with `{"totalCount":N}` → seeds a total (admin token)
//!
//! GET answers carry CORS headers so any page can read them; `OPTIONS` answers preflights.

use http::{header, Method, Request, Response};
use serde::Deserialize;
use serde_json::json;

use crate::admin::{check_bearer, BearerError};
use crate::clock::iso8601;
use crate::error::HttpError;
use crate::fastly_toml;
use crate::floor::Floor;
use crate::limits::{self, ClientAddress, ClientKey, Verdict};
use crate::log::Line;
use crate::request;
use crate::response::{self, finish};
use crate::site::SiteId;
use crate::snapshot::{self, Snapshot};
use crate::{badge, broadcast, history, page, presence, totals, Handled, Services};

/// The largest `PUT /api/total` body accepted.
const MAX_BODY: usize = 1024;

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
    crate::websocket::check_site(services.settings, &site)?;
    let now_ms = services.clock.now_ms();
    let now = iso8601(now_ms);
    match (endpoint, req.method()) {
        (_, &Method::OPTIONS) => Ok(preflight(endpoint).into()),
        (_, &Method::GET)
            if !may_read(
                services,
                req.uri().path(),
                client_of(req, services).as_ref(),
            ) =>
        {
            Err(HttpError::TooMany {
                what: "API reads",
                retry_after_secs: limits::api_retry_after_secs(services.clock.now_ms()),
            })
        }
        (Endpoint::Total, &Method::GET) => {
            let found = snapshot_of(services, &site)?;
            let total = read(
                services,
                &site,
                found.as_ref(),
                |s| s.total,
                |t| Some(t.total),
            )?;
            Ok(
                public(json!({"siteId": site.as_str(), "totalCount": total, "timestamp": now}))
                    .into(),
            )
        }
        (Endpoint::Online, _) => {
            let page = request::query_value(req.uri().query(), crate::websocket::PAGE_PARAM)
                .map(|p| page::id(&site, &p))
                .transpose()?;
            let floor = Floor::of(services.settings, &site);
            let found = snapshot_of(services, &site)?;
            let online = floor.show(read_online(services, &site, found.as_ref())?);
            let mut body =
                json!({"siteId": site.as_str(), "online": online.value, "timestamp": now});
            let today = found
                .as_ref()
                .map(|s| floor.show(history::today_peak(s, now_ms)));
            body["todayPeak"] = json!(today.map(|p| p.value));
            if let Some(min) = floor.min() {
                body["minCount"] = json!(min);
                body["belowMin"] = json!(online.below_min);
                body["todayPeakBelowMin"] = json!(today.is_some_and(|p| p.below_min));
            }
            if let Some(page_id) = page {
                let page =
                    read_page(services, &site, found.as_ref(), &page_id)?.map(|n| floor.show(n));
                body["pageOnline"] = json!(page.map(|p| p.value));
                if floor.min().is_some() {
                    body["pageBelowMin"] = json!(page.is_some_and(|p| p.below_min));
                }
            }
            Ok(public(body).into())
        }
        (Endpoint::History, _) => {
            let range = request::query_value(req.uri().query(), "range").unwrap_or_default();
            let range = history::Range::parse(&range).ok_or(HttpError::InvalidParameter {
                code: "invalid_range",
                message: "range must be 1h, 24h or 7d".into(),
            })?;
            Ok(public(read_history(services, &site, range)?).into())
        }
        (Endpoint::Badge | Endpoint::Shields, _) => {
            let style = badge::Style::from_query(req.uri().query())?;
            let floor = Floor::of(services.settings, &site);
            let found = snapshot_of(services, &site)?;
            let message = badge::message(floor.show(read_online(services, &site, found.as_ref())?));
            if endpoint == Endpoint::Shields {
                return Ok(public(badge::shields(&style, &message)).into());
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
            Ok(with_cors(finish(builder, badge::svg(&style, &message).into_bytes())).into())
        }
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
    }
}

/// A figure of the site, from `found`, its snapshot (read once a second per POP, no listing);
/// a site no broadcast has stored a snapshot for yet is counted from the store once.
fn read(
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
    let now = services.clock.now_ms();
    let settled =
        totals::settle(services.kv, site, now, false).map_err(|e| unavailable(e.to_string()))?;
    if let Some(value) = from_totals(&settled) {
        return Ok(value);
    }
    presence::count(services.kv, services.config, site, now).map_err(|e| unavailable(e.to_string()))
}

/// The readers of one page (by page id): from the snapshot like [`read`]; None for a page
/// beyond the site's busiest pages.
fn read_page(
    services: &Services,
    site: &SiteId,
    found: Option<&Snapshot>,
    page_id: &str,
) -> Result<Option<u64>, HttpError> {
    let unavailable = |what: String| unavailable(services, site, &what);
    match found {
        Some(last) if last.outlived(services.clock.now_ms(), services.config) => Ok(Some(0)),
        Some(last) => Ok(last.page_count(page_id)),
        None => {
            let now = services.clock.now_ms();
            let census = presence::census(services.kv, services.config, site, now)
                .map_err(|e| unavailable(e.to_string()))?;
            Ok(Some(census.pages.get(page_id).copied().unwrap_or(0)))
        }
    }
}

/// How long a POP keeps a history answer: its points are minutes.
const HISTORY_CACHE_MS: u64 = 60_000;

/// A range of the site's history as JSON, computed once per POP, range, minute and broadcast
/// (an answer changes only when a minute ends or a broadcast publishes).
fn read_history(
    services: &Services,
    site: &SiteId,
    range: history::Range,
) -> Result<serde_json::Value, HttpError> {
    let now = services.clock.now_ms();
    let current = snapshot::cached(services, site).ok().flatten();
    let cache_key = format!(
        "history/{site}/{}/{}/{}",
        range.name(),
        history::minute_of(now),
        current.as_ref().map_or(0, |s| s.slot_end_ms)
    );
    let mut failure = None;
    let mut compute = || {
        let floor = Floor::of(services.settings, site);
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
                    .map(|s| floor.show(history::today_peak(s, now)));
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

/// The site's snapshot, as this POP knows it (one read for all of a request's figures).
fn snapshot_of(services: &Services, site: &SiteId) -> Result<Option<Snapshot>, HttpError> {
    snapshot::cached(services, site).map_err(|e| unavailable(services, site, &e.to_string()))
}

/// Readers online now: the snapshot's count (0 once it outlived its readers), or counted from
/// the store before any broadcast stored one.
fn read_online(
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
fn unavailable(services: &Services, site: &SiteId, what: &str) -> HttpError {
    services.log.emit(&Line::Detail {
        event: "api-read-failed",
        site,
        detail: what,
    });
    HttpError::Unavailable("the store could not be read; try again".into())
}

/// Adds CORS headers to an API error, so pages can read why their GET failed.
pub fn with_cors(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    resp
}

fn authorize(req: &Request<Vec<u8>>, services: &Services) -> Result<(), HttpError> {
    let admin_token = services.secrets.get(fastly_toml::ADMIN_TOKEN_SECRET);
    check_bearer(
        request::header(req, "authorization"),
        admin_token.as_deref(),
    )
    .map_err(|e| match e {
        BearerError::NotConfigured => HttpError::Forbidden(
            "admin endpoints are disabled: no admin token is configured".into(),
        ),
        BearerError::Missing => {
            HttpError::Unauthorized("missing Authorization: Bearer <admin token>".into())
        }
        BearerError::Wrong => HttpError::Unauthorized("wrong admin token".into()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(rename = "totalCount")]
    total_count: u64,
}

fn seed_value(body: &[u8]) -> Result<u64, HttpError> {
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

fn write_total(services: &Services, site: &SiteId, value: u64) -> Result<(), HttpError> {
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

fn public(value: serde_json::Value) -> Response<Vec<u8>> {
    with_cors(response::json(200, &value))
}

/// The key of the request's client (its address), when it came with one (tests send none).
pub fn client_of(req: &Request<Vec<u8>>, services: &Services) -> Option<ClientKey> {
    let ClientAddress(address) = req.extensions().get::<ClientAddress>()?;
    let now_ms = services.clock.now_ms();
    Some(limits::client_key(
        services.cache,
        services.ids,
        now_ms,
        address,
    ))
}

/// Whether `client` may make one more API request (to `path`) this minute, and counts it; a
/// client refused is logged. Requests without a client are not limited.
pub fn may_read(services: &Services, path: &str, client: Option<&ClientKey>) -> bool {
    let Some(client) = client else {
        return true;
    };
    let now_ms = services.clock.now_ms();
    match limits::take_api_read(services.cache, &services.config.limits, client, now_ms) {
        Verdict::Within => true,
        Verdict::Unchecked => {
            services
                .log
                .emit(&Line::LimitUnchecked { limit: "api-reads" });
            true
        }
        Verdict::Over => {
            services.log.emit(&Line::ApiLimited { path });
            false
        }
    }
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
mod tests {
    use super::*;
    use crate::ids::IdSource;
    use crate::testing::TestServices;

    fn request(method: &str, path: &str, auth: Option<&str>, body: &str) -> Request<Vec<u8>> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            builder = builder.header("Authorization", auth);
        }
        builder.body(body.as_bytes().to_vec()).expect("request")
    }

    fn call(
        t: &TestServices,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> Result<Response<Vec<u8>>, HttpError> {
        handle(&request(method, path, auth, body), &t.services()).map(|h| h.response)
    }

    fn total_of(t: &TestServices, site: &str) -> u64 {
        let site = SiteId::parse(site).expect("site");
        totals::settle(&t.kv, &site, t.clock.now.get(), false)
            .expect("settle")
            .total
    }

    fn body(resp: &Response<Vec<u8>>) -> serde_json::Value {
        serde_json::from_slice(resp.body()).expect("json")
    }

    fn visits(t: &TestServices, site: &str, n: u32) {
        let site = SiteId::parse(site).expect("site");
        for _ in 0..n {
            totals::record_visit(&t.kv, &t.ids, &t.clock, &site).expect("visit");
        }
    }

    #[test]
    fn total_and_online_answer_with_cors_and_iso_timestamps() {
        let t = TestServices::new();
        t.set_time(1_795_862_040_123);
        visits(&t, "shop", 3);
        let resp = call(&t, "GET", "/api/total/shop", None, "").expect("total");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(
            body(&resp),
            json!({"siteId": "shop", "totalCount": 3, "timestamp": "2026-11-28T10:34:00.123Z"})
        );
        let resp = call(&t, "GET", "/api/online/shop", None, "").expect("online");
        assert_eq!(body(&resp)["online"], 0);
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    }

    #[test]
    fn online_answers_for_a_page_too() {
        let t = TestServices::new();
        t.set_time(1_795_862_040_123);
        let shop = SiteId::parse("shop").expect("site");
        let docs = page::id(&shop, "/docs").expect("id");
        let now = t.clock.now.get();
        for n in 1..=2 {
            let id = presence::new_id_from([0, n]);
            presence::join_on(&t.kv, &t.config, &shop, id, Some(docs.clone()), now).expect("join");
        }
        presence::join(&t.kv, &t.config, &shop, presence::new_id_from([0, 3]), now).expect("join");
        // No snapshot yet: counted from the store.
        let resp = call(&t, "GET", "/api/online/shop?page=/docs", None, "").expect("online");
        assert_eq!(
            (
                body(&resp)["online"].clone(),
                body(&resp)["pageOnline"].clone()
            ),
            (json!(3), json!(2))
        );
        let resp = call(&t, "GET", "/api/online/shop?page=/blog", None, "").expect("online");
        assert_eq!(body(&resp)["pageOnline"], 0);
        // From the snapshot once there is one; null beyond the busiest pages.
        let full = Snapshot {
            slot_end_ms: now,
            count: 70,
            total: None,
            pages: (0..page::MAX_PAGES as u64)
                .map(|n| (format!("{n:016x}"), 1))
                .collect(),
            peak: None,
        };
        snapshot::write(&t.kv, &t.config, &shop, &full).expect("snapshot");
        t.set_time(now + 2_000);
        let resp = call(&t, "GET", "/api/online/shop?page=/docs", None, "").expect("online");
        assert_eq!(body(&resp)["online"], 70);
        assert_eq!(body(&resp)["pageOnline"], serde_json::Value::Null);
        assert!(body(&resp).get("pageOnline").is_some());
        let err = call(&t, "GET", "/api/online/shop?page=a%20b", None, "").expect_err("bad page");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn below_the_privacy_floor_online_says_fewer_than_the_floor() {
        let mut t = TestServices::new();
        t.settings.insert("min_count.shop".into(), "5".into());
        let shop = SiteId::parse("shop").expect("site");
        let now = t.clock.now.get();
        for n in 1..=3 {
            presence::join(&t.kv, &t.config, &shop, presence::new_id_from([0, n]), now)
                .expect("join");
        }
        let resp = call(&t, "GET", "/api/online/shop?page=/x", None, "").expect("online");
        let b = body(&resp);
        assert_eq!(
            (
                &b["online"],
                &b["belowMin"],
                &b["minCount"],
                &b["pageOnline"],
                &b["pageBelowMin"]
            ),
            (&json!(5), &json!(true), &json!(5), &json!(5), &json!(true))
        );
        // Another site has no floor, and no floor fields.
        let resp = call(&t, "GET", "/api/online/other", None, "").expect("online");
        assert!(body(&resp).get("belowMin").is_none());
    }

    #[test]
    fn the_badge_and_shields_show_the_live_count() {
        let t = TestServices::new();
        let shop = SiteId::parse("shop").expect("site");
        let now = t.clock.now.get();
        for n in 1..=2 {
            presence::join(&t.kv, &t.config, &shop, presence::new_id_from([0, n]), now)
                .expect("join");
        }
        let resp = call(&t, "GET", "/badge/shop.svg?label=readers", None, "").expect("badge");
        assert_eq!(
            resp.headers()["content-type"],
            "image/svg+xml; charset=utf-8"
        );
        assert_eq!(resp.headers()["cache-control"], "public, max-age=10");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let svg = String::from_utf8(resp.body().clone()).expect("utf-8");
        assert!(svg.contains(">readers</text>") && svg.contains(">2</text>"));
        let resp = call(&t, "GET", "/api/shields/shop", None, "").expect("shields");
        assert_eq!(
            body(&resp),
            json!({"schemaVersion": 1, "label": "online", "message": "2", "color": "brightgreen"})
        );
        for (path, status, code) in [
            ("/badge/shop.svg?color=nope", 400, "invalid_color"),
            ("/api/shields/shop?label=", 400, "invalid_label"),
            ("/badge/shop.png", 404, "not_found"),
            ("/badge/a%20b.svg", 400, "invalid_site_id"),
        ] {
            let err = call(&t, "GET", path, None, "").expect_err(path);
            assert_eq!((err.status(), err.code()), (status, code), "{path}");
        }
        let err = call(&t, "POST", "/badge/shop.svg", None, "").expect_err("post");
        assert_eq!(err.status(), 405);
    }

    #[test]
    fn history_answers_each_range_and_refuses_others() {
        let t = TestServices::new();
        t.set_time(1_795_862_040_123);
        let shop = SiteId::parse("shop").expect("site");
        let now = t.clock.now.get();
        let last = Snapshot {
            slot_end_ms: now,
            count: 4,
            peak: Some(history::Peak {
                minute: history::minute_of(now),
                minute_peak: 6,
                day_peak: 9,
            }),
            ..Snapshot::default()
        };
        snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
        let resp = call(&t, "GET", "/api/history/shop?range=1h", None, "").expect("history");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let b = body(&resp);
        assert_eq!(
            (b["range"].clone(), b["stepSeconds"].clone()),
            (json!("1h"), json!(60))
        );
        let points = b["points"].as_array().expect("points");
        assert_eq!(points.len(), 60);
        assert_eq!(points.last(), Some(&json!(6)));
        assert_eq!(
            (b["peak"].clone(), b["todayPeak"].clone()),
            (json!(6), json!(9))
        );
        let b = body(&call(&t, "GET", "/api/history/shop?range=7d", None, "").expect("7d"));
        assert_eq!(b["stepSeconds"], 600);
        assert_eq!(
            body(&call(&t, "GET", "/api/online/shop", None, "").expect("online"))["todayPeak"],
            9
        );
        for query in ["", "?range=", "?range=2h", "?range=1H"] {
            let err =
                call(&t, "GET", &format!("/api/history/shop{query}"), None, "").expect_err(query);
            assert_eq!(
                (err.status(), err.code()),
                (400, "invalid_range"),
                "{query}"
            );
        }
    }

    #[test]
    fn a_snapshot_that_outlived_its_readers_counts_nobody() {
        let t = TestServices::new();
        t.set_time(1_795_862_040_123);
        let shop = SiteId::parse("shop").expect("site");
        let now = t.clock.now.get();
        // Everyone vanished without a word (a POP died): no heartbeat, no sweep, no newer
        // snapshot than this one.
        let last = Snapshot {
            slot_end_ms: now,
            count: 1000,
            ..Snapshot::default()
        };
        snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
        let online = |t: &TestServices| {
            body(&call(t, "GET", "/api/online/shop", None, "").expect("online"))["online"].clone()
        };
        assert_eq!(online(&t), 1000);
        t.set_time(now + snapshot::lifetime_ms(&t.config) + 1);
        assert_eq!(online(&t), 0);
        let badge = call(&t, "GET", "/api/shields/shop", None, "").expect("shields");
        assert_eq!(body(&badge)["message"], "0");
    }

    #[test]
    fn reset_and_seed_need_the_admin_token() {
        let mut t = TestServices::new();
        t.set_admin_token(b"tok");
        visits(&t, "shop", 2);
        for auth in [None, Some("Bearer nope"), Some("tok")] {
            let err = call(&t, "POST", "/api/reset/shop", auth, "").expect_err("refused");
            assert_eq!(err.status(), 401, "{auth:?}");
        }
        let resp = call(&t, "POST", "/api/reset/shop", Some("Bearer tok"), "").expect("reset");
        assert_eq!(body(&resp)["message"], "Total count reset successfully");
        assert_eq!(total_of(&t, "shop"), 0);

        let resp = call(
            &t,
            "PUT",
            "/api/total/shop",
            Some("Bearer tok"),
            r#"{"totalCount":1234}"#,
        )
        .expect("seed");
        assert_eq!(body(&resp)["totalCount"], 1234);
        let resp = call(&t, "GET", "/api/total/shop", None, "").expect("total");
        assert_eq!(body(&resp)["totalCount"], 1234);
    }

    #[test]
    fn without_a_configured_token_admin_endpoints_are_403_and_do_nothing() {
        let t = TestServices::new();
        visits(&t, "shop", 2);
        let err =
            call(&t, "POST", "/api/reset/shop", Some("Bearer anything"), "").expect_err("off");
        assert_eq!(err.status(), 403);
        assert_eq!(total_of(&t, "shop"), 2);
    }

    #[test]
    fn bad_seeds_bad_sites_and_wrong_methods_are_clear_errors() {
        let mut t = TestServices::new();
        t.set_admin_token(b"tok");
        for body in [
            "",
            "{}",
            r#"{"totalCount":-1}"#,
            r#"{"totalCount":"5"}"#,
            r#"{"totalCount":1,"x":2}"#,
        ] {
            let err =
                call(&t, "PUT", "/api/total/shop", Some("Bearer tok"), body).expect_err("bad");
            assert_eq!(err.status(), 400, "{body}");
        }
        let err = call(&t, "GET", "/api/total/bad%20site", None, "").expect_err("bad site");
        assert_eq!(err.code(), "invalid_site_id");
        let err = call(&t, "GET", "/api/total/", None, "").expect_err("empty site");
        assert_eq!(err.status(), 400);
        let err = call(&t, "DELETE", "/api/total/shop", None, "").expect_err("method");
        assert_eq!(
            err,
            HttpError::MethodNotAllowed {
                allow: "GET, PUT, OPTIONS"
            }
        );
        let err = call(&t, "GET", "/api/reset/shop", None, "").expect_err("method");
        assert_eq!(err, HttpError::MethodNotAllowed { allow: "POST" });
        // A bad site is refused before authorization or the store are consulted.
        let err = call(&t, "POST", "/api/reset/a%2Fb", None, "").expect_err("bad site");
        assert_eq!(err.status(), 400);
        assert_eq!(t.kv.len(), 0);
    }

    #[test]
    fn a_client_reads_its_share_a_minute_then_gets_429_with_retry_after() {
        let mut t = TestServices::new();
        t.config.limits.api_reads_per_minute = 2;
        t.set_time(1_800_000_010_000);
        let from = |address: &str| {
            let mut req = request("GET", "/api/online/shop", None, "");
            req.extensions_mut().insert(ClientAddress(address.into()));
            handle(&req, &t.services()).map(|h| h.response.status().as_u16())
        };
        assert_eq!(from("192.0.2.1"), Ok(200));
        assert_eq!(from("192.0.2.1"), Ok(200));
        let err = from("192.0.2.1").expect_err("over the limit");
        assert_eq!((err.status(), err.code()), (429, "too_many_requests"));
        let refused = response::error(&err);
        assert_eq!(
            refused.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"50"[..])
        );
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l == "liveuser api-limited path=/api/online/shop"));
        // Another client is unaffected; the next minute the client reads again.
        assert_eq!(from("192.0.2.2"), Ok(200));
        t.set_time(1_800_000_060_000);
        assert_eq!(from("192.0.2.1"), Ok(200));
    }

    #[test]
    fn preflight_answers_cors() {
        let t = TestServices::new();
        let resp = call(&t, "OPTIONS", "/api/online/shop", None, "").expect("preflight");
        assert_eq!(resp.status(), 204);
        assert_eq!(
            resp.headers()["access-control-allow-methods"],
            "GET, OPTIONS"
        );
    }

    #[test]
    fn ids_are_random_per_call() {
        let t = TestServices::new();
        assert_ne!(t.ids.random_u64s(), t.ids.random_u64s());
    }
}
