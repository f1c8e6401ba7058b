//! The site owner's live dashboard:
//!
//! - `GET /dashboard/{siteId}` → the page (self-contained: its script, style and chart are this
//!   service's own files). Its address carries the site's dashboard key in the fragment
//!   (`#key=…`), which browsers never send: the key reaches no log.
//! - `GET /dashboard/{siteId}/data` with `Authorization: Bearer <dashboard key or admin token>`
//!   → the view (`count::dashboard`), the busiest pages' names, when the count was taken, and
//!   a link to the live stream valid for [`LINK_LIFETIME_MS`]; 401 for a missing or wrong key,
//!   404 `unknown_site`.
//! - `GET /dashboard/{siteId}/live?t=<link>` → handed to Fanout, which holds it as a stream of
//!   server-sent events on the site's dashboard channel (`data: <view>` on each broadcast). The
//!   link is signed by this service and short-lived, so the URL, which logs may keep, opens
//!   nothing for long.

use http::{header, Method, Request, Response};
use serde_json::json;

use crate::count::floor::Floor;
use crate::count::snapshot::{self, Snapshot};
use crate::count::{dashboard, page, registry};
use crate::platform::clock::iso8601;
use crate::platform::fastly_toml;
use crate::platform::secrets::{constant_time_eq, derived_key, hex_prefix, hmac_sha256};
use crate::platform::Services;
use crate::surfaces::admin::{check_bearer, BearerError};
use crate::surfaces::handoff;
use crate::surfaces::Handled;
use crate::wire::error::HttpError;
use crate::wire::request::{header as header_value, query_value};
use crate::wire::site::SiteId;
use crate::wire::{event_stream, grip};

/// Where dashboards live.
pub const PREFIX: &str = "/dashboard/";

/// How long a live link opens the stream after the data answer gave it.
pub const LINK_LIFETIME_MS: u64 = 60_000;

/// What live links are signed under (see `secrets::derived_key`).
const LINK_KEY_LABEL: &[u8] = b"liveuser dashboard links";

/// Fanout sends this on an idle stream, so proxies keep it open.
const KEEP_ALIVE: &str = ":\\n\\n; format=cstring; timeout=20";

/// The page, its script and its style.
const PAGE: &str = include_str!("../../static/dashboard.html");

/// Whether `path` is one of these endpoints.
pub fn owns(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// Whether `path` is a dashboard's live stream (handed to Fanout, as SSE streams are).
pub fn is_live(path: &str) -> bool {
    matches!(route(path), Ok(Route::Live(_)))
}

enum Route {
    /// The page (the site is read by its script from the address).
    Page,
    Data(SiteId),
    Live(SiteId),
}

fn route(path: &str) -> Result<Route, HttpError> {
    let rest = path.strip_prefix(PREFIX).ok_or(HttpError::NotFound)?;
    let (site, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let site = SiteId::parse(site)?;
    match tail {
        "" => Ok(Route::Page),
        "data" => Ok(Route::Data(site)),
        "live" => Ok(Route::Live(site)),
        _ => Err(HttpError::NotFound),
    }
}

/// Answers a dashboard request.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(HttpError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    match route(req.uri().path())? {
        Route::Page => Ok(page_response()),
        Route::Data(site) => {
            authorize(req, services, &site)?;
            data(services, &site, Floor::of(services, &site))
        }
        Route::Live(site) => {
            handoff::check_signature(req, services)?;
            check_link(services, &site, query_value(req.uri().query(), "t"))?;
            Ok(held(services, &site))
        }
    }
    .map(Handled::from)
}

/// Refuses a live stream whose link is bad before it is handed to Fanout (its call back is
/// checked again: that is the authoritative check).
pub fn check_upgrade(
    services: &Services,
    path: &str,
    query: Option<&str>,
) -> Result<(), HttpError> {
    match route(path)? {
        Route::Live(site) => check_link(services, &site, query_value(query, "t")),
        _ => Err(HttpError::NotFound),
    }
}

fn page_response() -> Response<Vec<u8>> {
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        // The page loads nothing from elsewhere, and tells no other site where it was.
        .header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        .header("Referrer-Policy", "no-referrer")
        .header("X-Content-Type-Options", "nosniff")
        .body(PAGE.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Refuses a request that carries neither the site's dashboard key nor the admin token.
fn authorize(req: &Request<Vec<u8>>, services: &Services, site: &SiteId) -> Result<(), HttpError> {
    let given = header_value(req, "authorization");
    let admin = services.secrets.get(fastly_toml::ADMIN_TOKEN_SECRET);
    if check_bearer(given, admin.as_deref()).is_ok() {
        return Ok(());
    }
    let unreachable =
        |_| HttpError::Unavailable("the site registry could not be reached; try again".into());
    registry::entry(services, site)
        .map_err(unreachable)?
        .ok_or(HttpError::UnknownSite)?;
    let key = dashboard::key(services, site).map_err(unreachable)?;
    match check_bearer(given, key.as_deref().map(str::as_bytes)) {
        Ok(()) => Ok(()),
        Err(BearerError::Missing) => Err(HttpError::Unauthorized(
            "missing Authorization: Bearer <dashboard key>".into(),
        )),
        Err(BearerError::NotConfigured) => Err(HttpError::Unauthorized(
            "this site has no dashboard key yet: register it again to make one".into(),
        )),
        Err(BearerError::Wrong) => Err(HttpError::Unauthorized("wrong dashboard key".into())),
    }
}

/// The dashboard's first view, with the names of its pages and a live link.
fn data(services: &Services, site: &SiteId, floor: Floor) -> Result<Response<Vec<u8>>, HttpError> {
    let now = services.clock.now_ms();
    let (snapshot, fresh) = current(services, site);
    let mut view = dashboard::view(&snapshot, floor, !fresh.stale);
    let ids: Vec<&str> = snapshot.pages.iter().map(|(id, _)| id.as_str()).collect();
    view["siteId"] = json!(site.as_str());
    view["pageNames"] = json!(page::names(services, site, &ids));
    view["asOf"] = json!(iso8601(fresh.as_of_ms));
    view["ageMs"] = json!(fresh.age_ms);
    view["stale"] = json!(fresh.stale);
    view["minCount"] = json!(floor.min());
    view["live"] = json!(format!(
        "{PREFIX}{site}/live?t={}",
        link(services, site, now + LINK_LIFETIME_MS)?
    ));
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(view.to_string().into_bytes())
        .unwrap_or_default())
}

/// A live link for `site`, valid until `expires_ms`: `<expires_ms>.<signature>`; none from a
/// service with no secret to sign it with.
fn link(services: &Services, site: &SiteId, expires_ms: u64) -> Result<String, HttpError> {
    let key = derived_key(services.secrets, LINK_KEY_LABEL).ok_or_else(|| {
        HttpError::Unavailable("live dashboards need the service's secret".into())
    })?;
    let text = format!("{site}|{expires_ms}");
    let sig = hex_prefix(&hmac_sha256(&key, &[text.as_bytes()]), 16);
    Ok(format!("{expires_ms}.{sig}"))
}

fn check_link(services: &Services, site: &SiteId, given: Option<String>) -> Result<(), HttpError> {
    let refused = |why: &str| HttpError::Unauthorized(format!("dashboard link {why}"));
    let given = given.ok_or_else(|| refused("missing: ask /data for one"))?;
    let (expires, _) = given.split_once('.').ok_or_else(|| refused("malformed"))?;
    let expires_ms: u64 = expires.parse().map_err(|_| refused("malformed"))?;
    let expected = link(services, site, expires_ms)?;
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err(refused("not signed by this service"));
    }
    if expires_ms < services.clock.now_ms() {
        return Err(refused("expired: ask /data for a new one"));
    }
    Ok(())
}

/// The site's snapshot as this POP reads it (an empty one before any broadcast), and how fresh.
fn current(services: &Services, site: &SiteId) -> (Snapshot, snapshot::Freshness) {
    let now = services.clock.now_ms();
    let found = snapshot::cached(services, site).ok().flatten();
    let fresh = snapshot::Freshness::of(found.as_ref(), now, services.config);
    (found.unwrap_or_default(), fresh)
}

/// Fanout holds the stream on the site's dashboard channel, starting with the current view.
fn held(services: &Services, site: &SiteId) -> Response<Vec<u8>> {
    let (snapshot, fresh) = current(services, site);
    let view = dashboard::view(&snapshot, Floor::of(services, site), !fresh.stale);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(grip::HOLD_HEADER, "stream")
        .header(grip::CHANNEL_HEADER, dashboard::channel(site))
        .header(grip::KEEP_ALIVE_STREAM_HEADER, KEEP_ALIVE)
        .body(event_stream::event(None, &view.to_string()).into_bytes())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::registry::register;
    use crate::platform::testing::TestServices;

    fn get(t: &TestServices, path: &str, auth: Option<&str>) -> Result<Handled, HttpError> {
        let mut builder = Request::builder().method("GET").uri(path);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        handle(&builder.body(Vec::new()).expect("request"), &t.services())
    }

    fn keyed() -> (TestServices, String) {
        let mut t = TestServices::new();
        t.set_admin_token(b"admin");
        register(&t, "shop", "{}");
        let shop = SiteId::parse("shop").expect("site");
        let key = dashboard::make_key(&t.services(), &shop, false).expect("a key");
        (t, key)
    }

    #[test]
    fn the_data_opens_with_the_sites_key_or_the_admin_token_only() {
        let (t, key) = keyed();
        let ok = get(&t, "/dashboard/shop/data", Some(&format!("Bearer {key}"))).expect("ok");
        let view: serde_json::Value = serde_json::from_slice(ok.response.body()).expect("json");
        assert_eq!(
            (view["siteId"].as_str(), view["count"].as_u64()),
            (Some("shop"), Some(0))
        );
        assert!(view["live"]
            .as_str()
            .expect("link")
            .starts_with("/dashboard/shop/live?t="));
        assert!(get(&t, "/dashboard/shop/data", Some("Bearer admin")).is_ok());
        for (auth, says) in [
            (None, "missing"),
            (
                Some("Bearer 00000000000000000000000000000000"),
                "wrong dashboard key",
            ),
        ] {
            let err = get(&t, "/dashboard/shop/data", auth)
                .map(|_| ())
                .expect_err("refused");
            assert_eq!(err.status(), 401);
            assert!(err.to_string().contains(says), "{err}");
        }
        // Another site's key opens nothing here.
        let err = get(&t, "/dashboard/other/data", Some(&format!("Bearer {key}"))).err();
        assert_eq!(err.map(|e| e.status()), Some(404));
        let bad = get(&t, "/dashboard/a%20b/data", None)
            .map(|_| ())
            .expect_err("bad id");
        assert_eq!(bad.status(), 400);
    }

    #[test]
    fn a_live_link_is_signed_for_its_site_and_short_lived() {
        let (t, _) = keyed();
        let shop = SiteId::parse("shop").expect("site");
        let now = t.services().clock.now_ms();
        let good = link(&t.services(), &shop, now + LINK_LIFETIME_MS).expect("signed");
        let live = format!("/dashboard/shop/live?t={good}");
        assert!(check_upgrade(
            &t.services(),
            "/dashboard/shop/live",
            Some(&format!("t={good}"))
        )
        .is_ok());
        let blog = format!("t={good}");
        let other = check_upgrade(&t.services(), "/dashboard/blog/live", Some(&blog));
        assert_eq!(other.map_err(|e| e.status()), Err(401));
        // A signature of the right length that is not this service's, and a good one whose
        // expiry was pushed on.
        let forged = format!("t={}.{}", now + LINK_LIFETIME_MS, "0".repeat(32));
        let forged = check_upgrade(&t.services(), "/dashboard/shop/live", Some(&forged));
        assert_eq!(forged.map_err(|e| e.status()), Err(401));
        let (_, sig) = good.split_once('.').expect("signed");
        let forged = format!("t={}.{sig}", now + 10 * LINK_LIFETIME_MS);
        let forged = check_upgrade(&t.services(), "/dashboard/shop/live", Some(&forged));
        assert_eq!(forged.map_err(|e| e.status()), Err(401));
        t.set_time(now + LINK_LIFETIME_MS + 1);
        let expired = check_upgrade(
            &t.services(),
            "/dashboard/shop/live",
            Some(&format!("t={good}")),
        );
        assert!(expired
            .expect_err("expired")
            .to_string()
            .contains("expired"));
        // Fanout's call back must be signed by Fanout.
        let unsigned = get(&t, &live, None).map(|_| ()).expect_err("unsigned");
        assert_eq!(unsigned.status(), 403);
        assert!(is_live("/dashboard/shop/live") && !is_live("/dashboard/shop"));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let t = TestServices::new();
        let page = get(&t, "/dashboard/shop", None).expect("page").response;
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .expect("csp");
        assert!(csp.contains("default-src 'self'"));
        let html = String::from_utf8_lossy(page.body()).into_owned();
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert_eq!(
            get(&t, "/dashboard/shop/nope", None)
                .err()
                .map(|e| e.status()),
            Some(404)
        );
    }
}
