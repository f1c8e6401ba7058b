//! The site registry's admin endpoints, behind the admin token (what `liveuser sites` calls):
//!
//! - `GET /admin/sites[?cursor=…]` → `{"sites": [ids…], "cursor": next or null}` (1,000 a page)
//! - `GET /admin/sites/{siteId}` → `{"siteId", "origins"?, "minCount"?, "pages"?,
//!   "dashboardKey"?, "dashboard"?}`, or 404 `unknown_site`
//! - `PUT /admin/sites/{siteId}[?newDashboardKey=1]` with `{"origins"?, "minCount"?, "pages"?}`
//!   → the entry as stored (registers the site, or replaces its settings), with its
//!   `dashboardKey` (made with the site, kept across changes unless a new one is asked for) and
//!   its `dashboard` address; 400 `invalid_site_settings` says what to fix, and stores nothing
//! - `DELETE /admin/sites/{siteId}` → `{"siteId", "removed": true}` (its webhooks and dashboard
//!   key removed with it), or 404 `unknown_site`
//!
//! A change is in force at this POP at once and at every other within `registry::FRESH_MS`.

use http::{Method, Request};
use serde_json::{json, Value};

use crate::count::registry::{self, SiteEntry};
use crate::count::{dashboard, hooks};
use crate::platform::kv::KvError;
use crate::platform::log::Line;
use crate::platform::publisher::PublishItem;
use crate::platform::Services;
use crate::surfaces::admin::authorize;
use crate::surfaces::Handled;
use crate::wire::error::HttpError;
use crate::wire::request;
use crate::wire::response;
use crate::wire::site::SiteId;

/// Where the registry's endpoints live.
pub const PATH: &str = "/admin/sites";

/// `PUT …?newDashboardKey=1` replaces the site's dashboard key (the old one stops opening it).
pub const ROTATE_PARAM: &str = "newDashboardKey";

/// Whether `path` is one of these endpoints.
pub fn owns(path: &str) -> bool {
    path == PATH || path.starts_with("/admin/sites/")
}

/// Answers a registry request: method, admin token, site id, then the store.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let path = req.uri().path();
    let site = path.strip_prefix("/admin/sites/");
    match (site, req.method()) {
        (None, &Method::GET) => {
            authorize(req, services)?;
            list(req, services)
        }
        (None, _) => Err(HttpError::MethodNotAllowed { allow: "GET" }),
        (Some(raw), method @ (&Method::GET | &Method::PUT | &Method::DELETE)) => {
            authorize(req, services)?;
            let site = SiteId::parse(raw)?;
            match *method {
                Method::GET => show(services, &site),
                Method::PUT => put(req, services, &site),
                _ => remove(services, &site),
            }
        }
        (Some(_), _) => Err(HttpError::MethodNotAllowed {
            allow: "GET, PUT, DELETE",
        }),
    }
    .map(Handled::from)
}

/// A store that failed: logged with the site, 503 to the caller (the router logs the error).
fn unavailable(services: &Services, site: &SiteId, e: &KvError) -> HttpError {
    services.log.emit(&Line::Detail {
        event: "registry-failed",
        site,
        detail: &e.to_string(),
    });
    HttpError::Unavailable("the site registry could not be reached; try again".into())
}

fn described(site: &SiteId, entry: &SiteEntry, dashboard_key: Option<&str>) -> Value {
    let mut body = serde_json::to_value(entry).unwrap_or_else(|_| json!({}));
    body["siteId"] = json!(site.as_str());
    if let Some(key) = dashboard_key {
        body["dashboardKey"] = json!(key);
        // The dashboard's address: the key in the fragment, which browsers never send.
        body["dashboard"] = json!(format!("/dashboard/{site}#key={key}"));
    }
    body
}

fn list(req: &Request<Vec<u8>>, services: &Services) -> Result<http::Response<Vec<u8>>, HttpError> {
    let cursor = request::query_value(req.uri().query(), "cursor");
    let (sites, next) = registry::list(services.kv, cursor.as_deref()).map_err(|_| {
        HttpError::Unavailable("the site registry could not be listed; try again".into())
    })?;
    let ids: Vec<&str> = sites.iter().map(SiteId::as_str).collect();
    Ok(response::json(200, &json!({"sites": ids, "cursor": next})))
}

fn show(services: &Services, site: &SiteId) -> Result<http::Response<Vec<u8>>, HttpError> {
    match registry::entry(services, site) {
        Ok(Some(entry)) => {
            let key = dashboard::key(services, site).ok().flatten();
            Ok(response::json(
                200,
                &described(site, &entry, key.as_deref()),
            ))
        }
        Ok(None) => Err(HttpError::UnknownSite),
        Err(e) => Err(unavailable(services, site, &e)),
    }
}

fn put(
    req: &Request<Vec<u8>>,
    services: &Services,
    site: &SiteId,
) -> Result<http::Response<Vec<u8>>, HttpError> {
    let entry = SiteEntry::from_json(req.body()).map_err(|e| HttpError::InvalidParameter {
        code: "invalid_site_settings",
        message: e.0,
    })?;
    let rotate = match request::query_value(req.uri().query(), ROTATE_PARAM) {
        None => false,
        Some(v) => request::parse_bool(&v).ok_or_else(|| HttpError::InvalidParameter {
            code: "invalid_site_settings",
            message: format!("{ROTATE_PARAM} must be true, false, 1 or 0"),
        })?,
    };
    registry::put(services, site, &entry).map_err(|e| unavailable(services, site, &e))?;
    // The site's dashboard key is kept across changes of its settings, made when it has none.
    let key =
        dashboard::make_key(services, site, rotate).map_err(|e| unavailable(services, site, &e))?;
    if rotate {
        // Dashboards open with the old key are closed (they ask again, and are refused).
        let close = PublishItem::close_streams(dashboard::channel(site));
        if let Err(e) = services.publisher.publish(&[close]) {
            services.log.emit(&Line::Detail {
                event: "dashboard-close-failed",
                site,
                detail: &e.to_string(),
            });
        }
    }
    services.log.emit(&Line::Detail {
        event: "site-registered",
        site,
        detail: &entry.encode(),
    });
    Ok(response::json(200, &described(site, &entry, Some(&key))))
}

fn remove(services: &Services, site: &SiteId) -> Result<http::Response<Vec<u8>>, HttpError> {
    match registry::remove(services, site) {
        Ok(true) => {
            // Its webhooks and its dashboard key go with it (a site registered again starts
            // with none).
            if let Err(e) = dashboard::forget_key(services, site) {
                services.log.emit(&Line::Detail {
                    event: "dashboard-key-failed",
                    site,
                    detail: &e.to_string(),
                });
            }
            if let Err(e) = hooks::remove_all(services, site) {
                services.log.emit(&Line::Detail {
                    event: "hooks-failed",
                    site,
                    detail: &e.to_string(),
                });
            }
            services.log.emit(&Line::Detail {
                event: "site-removed",
                site,
                detail: "",
            });
            Ok(response::json(
                200,
                &json!({"siteId": site.as_str(), "removed": true}),
            ))
        }
        Ok(false) => Err(HttpError::UnknownSite),
        Err(e) => Err(unavailable(services, site, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config::UnregisteredSites;
    use crate::platform::testing::TestServices;

    const TOKEN: &str = "Bearer admin";

    fn call(
        t: &TestServices,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> Result<(u16, Value), HttpError> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        let req = builder.body(body.as_bytes().to_vec()).expect("request");
        let resp = handle(&req, &t.services())?.response;
        let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        Ok((resp.status().as_u16(), body))
    }

    fn services() -> TestServices {
        let mut t = TestServices::new();
        t.set_admin_token(b"admin");
        t.config.unregistered_sites = UnregisteredSites::Refuse;
        t
    }

    #[test]
    fn a_site_is_added_shown_listed_changed_and_removed() {
        let t = services();
        let docs = SiteId::parse("docs").expect("site");
        assert!(registry::check_site(&t.services(), &docs).is_err());
        let added = call(
            &t,
            "PUT",
            "/admin/sites/docs",
            Some(TOKEN),
            r#"{"origins": ["https://Docs.example/"], "minCount": 5}"#,
        );
        let (status, body) = added.expect("added");
        let key = body["dashboardKey"]
            .as_str()
            .expect("a dashboard key")
            .to_string();
        assert_eq!(key.len(), 32);
        let expected = json!({
            "siteId": "docs", "origins": ["https://docs.example"], "minCount": 5,
            "dashboardKey": key, "dashboard": format!("/dashboard/docs#key={key}"),
        });
        assert_eq!((status, body), (200, expected.clone()));
        assert!(
            registry::check_site(&t.services(), &docs).is_ok(),
            "served at once"
        );
        assert_eq!(
            call(&t, "GET", "/admin/sites/docs", Some(TOKEN), ""),
            Ok((200, expected))
        );
        call(&t, "PUT", "/admin/sites/blog", Some(TOKEN), "").expect("added");
        assert_eq!(
            call(&t, "GET", "/admin/sites", Some(TOKEN), ""),
            Ok((200, json!({"sites": ["blog", "docs"], "cursor": null})))
        );
        let changed = call(
            &t,
            "PUT",
            "/admin/sites/docs",
            Some(TOKEN),
            r#"{"pages": ["/guide/"]}"#,
        );
        let kept = json!({
            "siteId": "docs", "pages": ["/guide/"],
            "dashboardKey": key, "dashboard": format!("/dashboard/docs#key={key}"),
        });
        assert_eq!(changed, Ok((200, kept)), "the dashboard key is kept");
        let rotated = call(
            &t,
            "PUT",
            "/admin/sites/docs?newDashboardKey=1",
            Some(TOKEN),
            r#"{"pages": ["/guide/"]}"#,
        )
        .expect("rotated");
        assert_ne!(rotated.1["dashboardKey"], json!(key));
        assert_eq!(
            call(&t, "DELETE", "/admin/sites/docs", Some(TOKEN), ""),
            Ok((200, json!({"siteId": "docs", "removed": true})))
        );
        assert!(
            registry::check_site(&t.services(), &docs).is_err(),
            "refused at once"
        );
        let again = call(&t, "DELETE", "/admin/sites/docs", Some(TOKEN), "").expect_err("gone");
        assert_eq!((again.status(), again.code()), (404, "unknown_site"));
        let lines = t.log.lines();
        assert!(
            lines.iter().all(|l| !l.contains(&key)),
            "no log line holds a dashboard key"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("liveuser site-registered site=docs")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("liveuser site-removed site=docs")));
    }

    #[test]
    fn bad_requests_are_refused_clearly_and_change_nothing() {
        let t = services();
        let keys = t.kv.len();
        for (method, path, auth, body, status, code) in [
            ("PUT", "/admin/sites/docs", None, "{}", 401, "unauthorized"),
            (
                "PUT",
                "/admin/sites/docs",
                Some("Bearer nope"),
                "{}",
                401,
                "unauthorized",
            ),
            ("GET", "/admin/sites", None, "", 401, "unauthorized"),
            (
                "PUT",
                "/admin/sites/a%20b",
                Some(TOKEN),
                "{}",
                400,
                "invalid_site_id",
            ),
            (
                "PUT",
                "/admin/sites/docs",
                Some(TOKEN),
                r#"{"minCount": "x"}"#,
                400,
                "invalid_site_settings",
            ),
            (
                "PUT",
                "/admin/sites/docs",
                Some(TOKEN),
                r#"{"origins": ["docs.example"]}"#,
                400,
                "invalid_site_settings",
            ),
            (
                "POST",
                "/admin/sites/docs",
                Some(TOKEN),
                "{}",
                405,
                "method_not_allowed",
            ),
            (
                "DELETE",
                "/admin/sites",
                Some(TOKEN),
                "",
                405,
                "method_not_allowed",
            ),
            (
                "GET",
                "/admin/sites/nobody",
                Some(TOKEN),
                "",
                404,
                "unknown_site",
            ),
        ] {
            let err = call(&t, method, path, auth, body).expect_err(path);
            assert_eq!(
                (err.status(), err.code()),
                (status, code),
                "{method} {path} {body}"
            );
        }
        assert_eq!(t.kv.len(), keys, "nothing stored");
        let mut off = services();
        off.secrets.clear();
        let err = call(&off, "GET", "/admin/sites", Some(TOKEN), "").expect_err("off");
        assert_eq!(err.status(), 403);
    }
}
