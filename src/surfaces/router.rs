//! Routing: which handler answers which request.

use http::{header, Method, Request, Response};

use crate::platform::log::Line;
use crate::surfaces::assets;
use crate::surfaces::census;
use crate::surfaces::client;
use crate::surfaces::dashboard;
use crate::surfaces::loader;
use crate::surfaces::sites;
use crate::surfaces::sse;
use crate::surfaces::webhooks;
use crate::surfaces::websocket;
use crate::surfaces::{access, api};
use crate::wire::error::HttpError;
use crate::wire::hash;
use crate::wire::request::{self, has_token};
use crate::wire::response::{self, finish};
use crate::wire::websocket_events;
use crate::{platform::Services, surfaces::Handled};

/// The WebSocket endpoint's path.
pub const WEBSOCKET_PATH: &str = "/ws";

/// Whether this request is a browser's WebSocket upgrade, or its SSE stream, that Fanout must
/// take over.
///
/// Requests that come back from Fanout are POSTs of WebSocket events, never upgrades, or
/// signed stream requests (`signed`: they carry a `Grip-Sig`), so they are not handed off
/// again. (A browser's forged `Grip-Sig` gets it no further: the stream checks it, 403.)
pub fn wants_fanout_handoff(
    method: &Method,
    path: &str,
    upgrade: Option<&str>,
    signed: bool,
) -> bool {
    let upgrade = path == WEBSOCKET_PATH && upgrade.is_some_and(|u| has_token(u, "websocket"));
    let stream = (path == sse::STREAM_PATH || dashboard::is_live(path)) && !signed;
    method == Method::GET && (upgrade || stream)
}

/// `path` as the logs may show it: a next link's path holds a stream's session (its presence
/// id, its client's daily key), which no log line of this service keeps.
pub fn loggable_path(path: &str) -> &str {
    if path.starts_with(sse::ALIVE_PREFIX) {
        "/sse/alive/…"
    } else {
        path
    }
}

/// Answers every request that is not handed off.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Handled {
    match route(req, services) {
        Ok(handled) => handled,
        Err(e) => {
            services.log.emit(&Line::Error {
                method: req.method().as_str(),
                path: loggable_path(req.uri().path()),
                error: &e,
            });
            response::error(&e).into()
        }
    }
}

fn route(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let path = req.uri().path();
    if path == WEBSOCKET_PATH {
        return websocket_endpoint(req, services);
    }
    // CORS on errors too, so a page can read why its request failed.
    let with_cors_on_error = |e: HttpError| -> Handled {
        services.log.emit(&Line::Error {
            method: req.method().as_str(),
            path: loggable_path(path),
            error: &e,
        });
        access::with_cors(response::error(&e)).into()
    };
    if census::owns(path) {
        return census::handle(req, services).map(Handled::from);
    }
    if sse::owns(path) {
        return Ok(sse::handle(req, services).unwrap_or_else(with_cors_on_error));
    }
    if api::owns(path) {
        return Ok(api::handle(req, services).unwrap_or_else(with_cors_on_error));
    }
    // Before the registry's: its paths are under /admin/sites/ too.
    if webhooks::owns(path) {
        return webhooks::handle(req, services);
    }
    if sites::owns(path) {
        return sites::handle(req, services);
    }
    if dashboard::owns(path) {
        return dashboard::handle(req, services);
    }
    let served = match path {
        // A route that does nothing: health checks, and the benchmarks' baseline.
        "/healthz" => Ok(finish(Response::builder().status(204), Vec::new())),
        "/liveuser.js" => serve_script(req, services, true),
        "/init-liveuser.js" => serve_script(req, services, false),
        "/liveuser.mjs" => {
            let how = Cacheable {
                content_type: "text/javascript; charset=utf-8",
                cache_control: "public, max-age=3600, stale-while-revalidate=86400",
                script: true,
            };
            serve_cacheable(req, how, client::module().as_bytes().to_vec())
        }
        p if p.starts_with(client::VERSIONED_PREFIX) => serve_versioned(req),
        "/" => {
            let page = assets::index_page(&loader::origin(req));
            let how = Cacheable {
                content_type: "text/html; charset=utf-8",
                ..STATIC_FILE
            };
            serve_cacheable(req, how, page.into_bytes())
        }
        _ => match assets::lookup(path) {
            Some(asset) => {
                let how = Cacheable {
                    content_type: asset.content_type,
                    ..STATIC_FILE
                };
                serve_cacheable(req, how, asset.body.to_vec())
            }
            None => Err(HttpError::NotFound),
        },
    };
    served.map(Handled::from)
}

/// `/ws` takes WebSocket-over-HTTP POSTs from Fanout; a plain GET gets 426.
fn websocket_endpoint(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let is_events = request::header(req, "content-type") == Some(websocket_events::CONTENT_TYPE);
    match *req.method() {
        Method::POST if is_events => websocket::handle(req, services),
        Method::POST => Err(HttpError::UnsupportedMediaType),
        Method::GET | Method::HEAD => Err(HttpError::UpgradeRequired),
        _ => Err(HttpError::MethodNotAllowed { allow: "GET" }),
    }
}

/// How a cacheable body is served.
struct Cacheable {
    content_type: &'static str,
    cache_control: &'static str,
    /// Script responses may be read by any origin and are compressed at the edge.
    script: bool,
}

const STATIC_FILE: Cacheable = Cacheable {
    content_type: "",
    cache_control: "public, max-age=300",
    script: false,
};

/// Serves a body for GET and HEAD with a strong ETag (answering 304 to a match).
fn serve_cacheable(
    req: &Request<Vec<u8>>,
    how: Cacheable,
    body: Vec<u8>,
) -> Result<Response<Vec<u8>>, HttpError> {
    let head_only = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(HttpError::MethodNotAllowed { allow: "GET, HEAD" }),
    };
    let etag = format!("\"{:016x}\"", hash::fnv1a(&body));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, how.content_type)
        .header(header::ETAG, etag.as_str())
        .header(header::CACHE_CONTROL, how.cache_control)
        .header("X-Content-Type-Options", "nosniff");
    if how.script {
        builder = builder
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            // Fastly compresses dynamic responses that carry this hint.
            .header("x-compress-hint", "on");
    }
    if request::header(req, "if-none-match").is_some_and(|tags| etag_matches(tags, &etag)) {
        return Ok(finish(builder.status(304), Vec::new()));
    }
    let len = body.len();
    let body = if head_only { Vec::new() } else { body };
    Ok(finish(
        builder.status(200).header(header::CONTENT_LENGTH, len),
        body,
    ))
}

/// The loader and the bare client: the configuration is in the URL, so one URL always means
/// one body, and caching it is safe.
fn serve_script(
    req: &Request<Vec<u8>>,
    services: &Services,
    with_query: bool,
) -> Result<Response<Vec<u8>>, HttpError> {
    let origin = loader::origin(req);
    let query = if with_query { req.uri().query() } else { None };
    let config = match loader::client_config(query, &origin, services.config) {
        Ok(config) => config,
        // A page's script tag (browsers name the destination) cannot read a 400: it is answered
        // a script that tells the page; any other client, the 400.
        Err(e) if request::header(req, "sec-fetch-dest") == Some("script") => {
            services.log.emit(&Line::Error {
                method: req.method().as_str(),
                path: req.uri().path(),
                error: &e,
            });
            let how = Cacheable {
                content_type: "text/javascript; charset=utf-8",
                cache_control: "no-store",
                script: true,
            };
            return serve_cacheable(req, how, loader::refusal_body(&e).into_bytes());
        }
        Err(e) => return Err(e),
    };
    let body = if with_query {
        loader::loader_body(&config)
    } else {
        loader::init_body(&config)
    };
    let how = Cacheable {
        content_type: "text/javascript; charset=utf-8",
        cache_control: "public, max-age=3600, stale-while-revalidate=86400",
        script: true,
    };
    serve_cacheable(req, how, body.into_bytes())
}

/// The versioned client: the same bytes for good at its path, so caches keep it a year. Another
/// version's path (an embed pinned before a deploy changed the client) is a 404 saying where
/// the current one is: serving these bytes there would fail its integrity check anyway.
fn serve_versioned(req: &Request<Vec<u8>>) -> Result<Response<Vec<u8>>, HttpError> {
    let current = client::versioned();
    if req.uri().path() != current.path {
        return Err(HttpError::UnknownVersion {
            current: format!("{} (integrity {})", current.path, current.integrity),
        });
    }
    let how = Cacheable {
        content_type: "text/javascript; charset=utf-8",
        cache_control: "public, max-age=31536000, immutable",
        script: true,
    };
    serve_cacheable(req, how, current.body.clone().into_bytes())
}

/// `If-None-Match` may list several tags, or `*`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::TestServices;

    fn request(method: &str, uri: &str) -> Request<Vec<u8>> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Vec::new())
            .expect("request")
    }

    #[test]
    fn only_websocket_upgrades_on_ws_are_handed_off() {
        let ws = Some("WebSocket");
        assert!(wants_fanout_handoff(&Method::GET, "/ws", ws, false));
        assert!(!wants_fanout_handoff(&Method::GET, "/other", ws, false));
        assert!(!wants_fanout_handoff(&Method::POST, "/ws", ws, false));
        assert!(!wants_fanout_handoff(
            &Method::GET,
            "/ws",
            Some("h2c"),
            false
        ));
        assert!(!wants_fanout_handoff(&Method::GET, "/ws", None, false));
        // A browser's stream is handed off; Fanout's signed request for it is answered.
        assert!(wants_fanout_handoff(&Method::GET, "/sse", None, false));
        assert!(!wants_fanout_handoff(&Method::GET, "/sse", None, true));
        assert!(!wants_fanout_handoff(
            &Method::POST,
            "/sse/heartbeat",
            None,
            false
        ));
    }

    #[test]
    fn plain_get_on_ws_is_426_with_json() {
        let services = TestServices::new();
        let resp = handle(&request("GET", "/ws?siteId=a"), &services.services()).response;
        assert_eq!(resp.status(), 426);
        let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("json");
        assert_eq!(body["error"], "upgrade_required");
    }

    #[test]
    fn other_methods_on_ws_are_405_and_wrong_type_415() {
        let services = TestServices::new();
        let resp = handle(&request("DELETE", "/ws"), &services.services()).response;
        assert_eq!(resp.status(), 405);
        let resp = handle(&request("POST", "/ws"), &services.services()).response;
        assert_eq!(resp.status(), 415);
    }

    #[test]
    fn serves_the_index_with_etag_and_304() {
        let services = TestServices::new();
        let resp = handle(&request("GET", "/"), &services.services()).response;
        assert_eq!(resp.status(), 200);
        assert!(String::from_utf8_lossy(resp.body()).contains("LiveUser"));
        let etag = resp.headers()["etag"].to_str().expect("ascii").to_string();
        let mut again = request("GET", "/");
        again
            .headers_mut()
            .insert("if-none-match", etag.parse().expect("header"));
        let resp = handle(&again, &services.services()).response;
        assert_eq!(resp.status(), 304);
        assert!(resp.body().is_empty());
    }

    #[test]
    fn head_has_no_body_and_post_is_405() {
        let services = TestServices::new();
        let resp = handle(&request("HEAD", "/static/style.css"), &services.services()).response;
        assert_eq!(resp.status(), 200);
        assert!(resp.body().is_empty());
        let resp = handle(&request("POST", "/"), &services.services()).response;
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
    }

    #[test]
    fn the_loader_is_one_cacheable_script() {
        let services = TestServices::new();
        let mut req = request(
            "GET",
            "http://live.example/liveuser.js?siteId=shop&baseUrl=https://evil.example",
        );
        let resp = handle(&req, &services.services()).response;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        let body = String::from_utf8_lossy(resp.body()).into_owned();
        assert!(body.contains("window.LiveUser.init(config)"));
        assert!(body.contains(r#""serverUrl":"ws://live.example""#));
        assert!(!body.contains("evil.example"));
        let etag = resp.headers()["etag"].clone();
        req.headers_mut().insert("if-none-match", etag);
        assert_eq!(handle(&req, &services.services()).response.status(), 304);
        let bad = handle(
            &request("GET", "/liveuser.js?siteId=a%20b"),
            &services.services(),
        )
        .response;
        assert_eq!(bad.status(), 400);
        let mut from_a_page = request("GET", "/liveuser.js?siteId=a%20b");
        from_a_page
            .headers_mut()
            .insert("sec-fetch-dest", "script".parse().expect("header"));
        let told = handle(&from_a_page, &services.services()).response;
        assert_eq!(told.status(), 200);
        assert!(String::from_utf8_lossy(told.body()).contains("invalid_site_id"));
        assert!(services
            .log
            .lines()
            .iter()
            .any(|l| l.contains("error=invalid_site_id")));
        let init = handle(&request("GET", "/init-liveuser.js"), &services.services()).response;
        assert!(String::from_utf8_lossy(init.body()).contains("window.LiveUserConfig"));
    }

    #[test]
    fn unknown_paths_are_404_json() {
        let services = TestServices::new();
        let resp = handle(&request("GET", "/nope"), &services.services()).response;
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }
}
