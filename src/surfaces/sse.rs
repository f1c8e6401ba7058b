//! The SSE fallback: for networks that block WebSockets (or `transport=sse`), the client reads
//! the same counts from an EventSource stream that Fanout holds (GRIP `Grip-Hold: stream`, on
//! the same channels as the sockets), and keeps its presence with HTTP heartbeats.
//!
//! - `GET /sse?siteId=…` (the socket's parameters): the browser's request is handed to Fanout
//!   as an upgrade is (same checks, same per-client limits); Fanout asks this service back,
//!   signed, and `open` joins the reader (a KV write a window), counts its visit, and answers with
//!   the hold, a `session` event and the first count. Publishes reach the stream as
//!   `data: <the same JSON>` events.
//! - `POST /sse/heartbeat` with `{"session":…}` (as text, so no CORS preflight): `heartbeat`
//!   refreshes the presence as a socket's heartbeat does (a KV write once a window), and answers
//!   the next session.
//! - `POST /sse/leave` with `{"session":…}` (the client's `sendBeacon` on `pagehide`):
//!   `leave` removes the presence at once.
//!
//! The session is what a socket keeps in Fanout's connection meta: the site, the random
//! presence id and the windows it has keys in, the page id, the totals flag and the socket ticket,
//! signed (HMAC-SHA256) with a key derived from a secret the service has anyway (the publish
//! token in production, the local Grip key locally): a session the service did not give is
//! refused, so a heartbeat or leave can only extend or end the presence of a stream that was
//! handed off, checked and counted. Heartbeats and leaves count against the client's API
//! requests a minute.

use hmac::{Hmac, Mac};
use http::{header, Method, Request, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::count::first_count::{self, Reader};
use crate::count::limits::{self, ClientKey};
use crate::count::presence::{self, Lease};
use crate::count::{broadcast, page, registry, snapshot, visits};
use crate::platform::log::Line;
use crate::platform::secrets::{derived_key, hex_prefix, hmac_sha256};
use crate::platform::Services;
use crate::surfaces::{access, handoff, params, Handled};
use crate::wire::error::HttpError;
use crate::wire::event_stream;
use crate::wire::grip;
use crate::wire::request::header as header_value;
use crate::wire::response::{self, finish};
use crate::wire::site::SiteId;

/// Where a browser opens its stream.
pub const STREAM_PATH: &str = "/sse";
/// Where it sends its heartbeats.
pub const HEARTBEAT_PATH: &str = "/sse/heartbeat";
/// Where it says it leaves.
pub const LEAVE_PATH: &str = "/sse/leave";
/// The largest heartbeat or leave body accepted.
pub const MAX_BODY: usize = 1024;
/// Fanout sends this on an idle stream, so proxies keep it open.
const KEEP_ALIVE: &str = ":\\n\\n; format=cstring; timeout=20";

/// Whether `path` belongs to the SSE fallback.
pub fn owns(path: &str) -> bool {
    matches!(path, STREAM_PATH | HEARTBEAT_PATH | LEAVE_PATH)
}

/// What a stream's reader carries from request to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub site: SiteId,
    pub lease: Lease,
    pub totals: bool,
    pub ticket: Option<u32>,
}

/// The key sessions are signed with, when the service has a secret to derive it from.
pub fn session_key(services: &Services) -> Option<[u8; 32]> {
    derived_key(services.secrets, b"liveuser sse session")
}

/// [`session_key`], or 503: without a secret no session can be trusted.
fn required_session_key(services: &Services) -> Result<[u8; 32], HttpError> {
    session_key(services).ok_or_else(|| {
        HttpError::Unavailable("SSE streams need the service's publish token secret".into())
    })
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(key).expect("a 32-byte key")
}

fn invalid_session() -> HttpError {
    HttpError::InvalidParameter {
        code: "invalid_session",
        message: "session must be one this service gave".into(),
    }
}

impl Session {
    /// [`Session::encode`], then `|` and its signature (128 bits of HMAC, hex).
    pub fn sign(&self, key: &[u8; 32]) -> String {
        let payload = self.encode();
        let tag = hex_prefix(&hmac_sha256(key, &[payload.as_bytes()]), 16);
        format!("{payload}|{tag}")
    }

    /// A signed session, checked (in constant time) against `key`, then parsed.
    pub fn verify(text: &str, key: &[u8; 32]) -> Result<Session, HttpError> {
        let (payload, hex) = text.rsplit_once('|').ok_or_else(invalid_session)?;
        let tag: Option<Vec<u8>> = (hex.len() == 32)
            .then(|| {
                (0..16)
                    .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
                    .collect()
            })
            .flatten();
        let tag = tag.ok_or_else(invalid_session)?;
        mac(key)
            .chain_update(payload.as_bytes())
            .verify_truncated_left(&tag)
            .map_err(|_| invalid_session())?;
        Session::parse(payload)
    }

    /// `<site>|<presence id>|<windows>|<page id or ->|<0 or 1>|<ticket or ->`.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.site,
            self.lease.id,
            self.lease.windows_meta(),
            self.lease.page.as_deref().unwrap_or("-"),
            u8::from(self.totals),
            self.ticket.map_or("-".to_string(), |t| t.to_string()),
        )
    }

    pub fn parse(text: &str) -> Result<Session, HttpError> {
        let bad = invalid_session;
        let parts: Vec<&str> = text.split('|').collect();
        let [site, id, windows, page, totals, ticket] = parts[..] else {
            return Err(bad());
        };
        let site = SiteId::parse(site).map_err(|_| bad())?;
        let page = match page {
            "-" => None,
            p if page::is_page_id(p) => Some(p.to_string()),
            _ => return Err(bad()),
        };
        let lease = Lease::from_meta(id, windows).ok_or_else(bad)?.on_page(page);
        let totals = match totals {
            "0" => false,
            "1" => true,
            _ => return Err(bad()),
        };
        let ticket = match ticket {
            "-" => None,
            t => Some(t.parse().map_err(|_| bad())?),
        };
        Ok(Session {
            site,
            lease,
            totals,
            ticket,
        })
    }
}

/// Answers the stream endpoints.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let path = req.uri().path();
    match (path, req.method()) {
        (_, &Method::OPTIONS) => Ok(preflight().into()),
        (STREAM_PATH, &Method::GET) => open(req, services),
        (STREAM_PATH, _) => Err(HttpError::MethodNotAllowed { allow: "GET" }),
        (HEARTBEAT_PATH, &Method::POST) => heartbeat(req, services),
        (LEAVE_PATH, &Method::POST) => leave(req, services),
        _ => Err(HttpError::MethodNotAllowed {
            allow: "POST, OPTIONS",
        }),
    }
}

/// Fanout asks for a stream: join the reader and hold the stream on its channels.
fn open(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    handoff::check_signature(req, services)?;
    // Set by this service's own handoff (a client's copies are dropped there).
    let client = header_value(req, handoff::CLIENT_HEADER).and_then(ClientKey::parse);
    let ticket: Option<u32> =
        header_value(req, handoff::TICKET_HEADER).and_then(|t| t.parse().ok());
    let opened = join(req, services, &client, ticket);
    // A stream refused here gives back the socket ticket its handoff took.
    if let (Err(_), Some(client), Some(ticket)) = (&opened, &client, ticket) {
        if let Ok(params) = params::connect_params(services.secrets, req.uri().query()) {
            limits::release_socket(services.cache, &params.site, client, ticket);
        }
    }
    opened
}

/// The checks and the join of [`open`].
fn join(
    req: &Request<Vec<u8>>,
    services: &Services,
    client: &Option<ClientKey>,
    ticket: Option<u32>,
) -> Result<Handled, HttpError> {
    let key = required_session_key(services)?;
    let params = params::connect_params(services.secrets, req.uri().query())?;
    let site = params.site.clone();
    registry::check_site(services.settings, &site)?;
    registry::check_origin(services.settings, &site, header_value(req, "origin"))?;
    let uncounted = header_value(req, handoff::UNCOUNTED_HEADER) == Some("1");
    // A tab taking over a closing tab's presence (tabs that fell back to a stream together).
    let took_over = params.handover.is_some();
    let id = params
        .handover
        .clone()
        .unwrap_or_else(|| presence::new_id_from(services.ids.random_u64s()));
    let now = services.clock.now_ms();
    let lease = if uncounted {
        Lease {
            id,
            windows: Vec::new(),
            page: params.page.clone(),
        }
    } else {
        presence::join_on(
            services.kv,
            services.config,
            &site,
            id,
            params.page.clone(),
            now,
        )
        .map_err(|e| {
            services.log.emit(&Line::PresenceJoinFailed {
                conn: "sse",
                site: &site,
                error: &e.to_string(),
            });
            HttpError::Unavailable("presence could not be recorded; try again".into())
        })?
    };
    let visited = !uncounted
        && params.totals
        && params.visit
        && visits::count_visit(services, "sse", &site, client.as_ref());
    let session = Session {
        site: site.clone(),
        lease,
        totals: params.totals,
        ticket,
    };
    let mut channels = vec![if params.totals {
        site.totals_channel()
    } else {
        site.channel()
    }];
    if let Some(page_id) = &session.lease.page {
        channels.push(page::channel(&site, page_id));
    }
    let mut body = event_stream::event(
        Some("session"),
        &json!({"type": "session", "session": session.sign(&key)}).to_string(),
    );
    let reader = Reader {
        site: &site,
        lease: &session.lease,
        totals: params.totals,
        visited,
        took_over,
        written_ms: None,
    };
    if let Some(first) = first_count::first_count(services, &reader, false) {
        body.push_str(&event_stream::event(None, &first));
    }
    let builder = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(grip::HOLD_HEADER, "stream")
        .header(grip::CHANNEL_HEADER, channels.join(", "))
        .header(grip::KEEP_ALIVE_STREAM_HEADER, KEEP_ALIVE);
    Ok(Handled {
        response: finish(builder, body.into_bytes()),
        broadcast: (!uncounted)
            .then(|| broadcast::schedule(services, &site))
            .flatten(),
        log_fields: format!("site={site} events=SSE-OPEN"),
    })
}

#[derive(Deserialize)]
struct SessionBody {
    session: String,
}

/// A heartbeat's or leave's request, checked: the session it carries (signed by this
/// service), the key that signed it, and the request's client.
struct Checked {
    session: Session,
    key: [u8; 32],
    client: Option<ClientKey>,
}

/// Checks a heartbeat or leave, within its client's share of API requests.
fn checked(req: &Request<Vec<u8>>, services: &Services) -> Result<Checked, HttpError> {
    let key = required_session_key(services)?;
    let client = access::client_of(req, services);
    if !access::may_read(services, req.uri().path(), client.as_ref()) {
        return Err(HttpError::TooMany {
            what: "API requests",
            retry_after_secs: limits::api_retry_after_secs(services.clock.now_ms()),
        });
    }
    if req.body().len() > MAX_BODY {
        return Err(HttpError::PayloadTooLarge { max: MAX_BODY });
    }
    let body: SessionBody = serde_json::from_slice(req.body())
        .map_err(|_| HttpError::BadRequest("the body must be JSON: {\"session\": …}".into()))?;
    Ok(Checked {
        session: Session::verify(&body.session, &key)?,
        key,
        client,
    })
}

/// A stream's heartbeat: refreshes its presence (a KV write once a window), keeps its ticket, and
/// claims the site's sweep when one is due, as a socket's heartbeat does.
fn heartbeat(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let Checked {
        mut session,
        key,
        client,
    } = checked(req, services)?;
    let site = session.site.clone();
    registry::check_site(services.settings, &site)?;
    let counted = !session.lease.windows.is_empty();
    if counted {
        if let (Some(ticket), Some(client)) = (session.ticket, &client) {
            let ttl = limits::socket_ticket_ttl_ms(services.config);
            limits::keep_socket(services.cache, &site, client, ticket, ttl);
        }
        let now = services.clock.now_ms();
        match presence::refresh(services.kv, services.config, &site, &session.lease, now) {
            Ok((lease, _)) => session.lease = lease,
            Err(e) => services.log.emit(&Line::PresenceRefreshFailed {
                conn: "sse",
                site: &site,
                error: &e.to_string(),
            }),
        }
    }
    let reply = json!({
        "type": "heartbeat",
        "timestamp": services.clock.now_secs(),
        "session": session.sign(&key),
    });
    Ok(Handled {
        response: access::with_cors(response::json(200, &reply)),
        broadcast: counted
            .then(|| broadcast::sweep_due(services, &site))
            .flatten(),
        log_fields: format!("site={site} events=SSE-HEARTBEAT"),
    })
}

/// A stream's reader leaves (the page's `sendBeacon`): its presence goes at once.
fn leave(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let Checked {
        session, client, ..
    } = checked(req, services)?;
    let site = session.site.clone();
    if let (Some(ticket), Some(client)) = (session.ticket, &client) {
        limits::release_socket(services.cache, &site, client, ticket);
    }
    let no_content = || access::with_cors(finish(Response::builder().status(204), Vec::new()));
    if session.lease.windows.is_empty() {
        return Ok(no_content().into());
    }
    if let Err(e) = presence::leave(
        services.kv,
        services.clock,
        services.config,
        &site,
        &session.lease,
    ) {
        services.log.emit(&Line::PresenceLeaveFailed {
            conn: "sse",
            site: &site,
            error: &e.to_string(),
        });
    }
    snapshot::note_leave(services.cache, &site, services.clock.now_ms());
    Ok(Handled {
        response: no_content(),
        broadcast: broadcast::schedule(services, &site),
        log_fields: format!("site={site} events=SSE-LEAVE"),
    })
}

fn preflight() -> Response<Vec<u8>> {
    let builder = Response::builder()
        .status(204)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS")
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type")
        .header(header::ACCESS_CONTROL_MAX_AGE, "86400");
    finish(builder, Vec::new())
}

// The tests mint Grip-Sig tokens with the testkit (native only).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::platform::testing::{TestServices, TEST_GRIP_KEY};
    use liveuser_testkit::jwt::hs256_token;

    const NOW_MS: u64 = 1_800_000_000_000;

    fn services() -> TestServices {
        let t = TestServices::new();
        t.set_time(NOW_MS);
        t
    }

    fn request(method: &str, uri: &str, signed: bool, body: &str) -> Request<Vec<u8>> {
        let mut builder = Request::builder().method(method).uri(uri);
        if signed {
            let token = hs256_token(TEST_GRIP_KEY, "pushpin", NOW_MS / 1000 + 3600);
            builder = builder.header(grip::SIGNATURE_HEADER, token);
        }
        builder.body(body.as_bytes().to_vec()).expect("request")
    }

    fn session_in(body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("a data line");
        let v: serde_json::Value = serde_json::from_str(data).expect("json");
        v["session"].as_str().expect("session").to_string()
    }

    #[test]
    fn a_stream_is_held_on_its_channels_with_its_session_and_first_count() {
        let t = services();
        let opened = handle(
            &request("GET", "/sse?siteId=shop&page=/docs", true, ""),
            &t.services(),
        )
        .expect("open");
        let resp = &opened.response;
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["grip-hold"], "stream");
        let shop = SiteId::parse("shop").expect("site");
        let page_id = page::id(&t.secrets, &shop, "/docs").expect("id");
        assert_eq!(
            resp.headers()["grip-channel"],
            format!("site:shop, page:shop:{page_id}").as_str()
        );
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let body = String::from_utf8_lossy(resp.body()).into_owned();
        assert!(body.starts_with("event: session\ndata: "), "{body}");
        assert!(body.ends_with("data: {\"type\":\"update\",\"count\":1,\"pageCount\":1}\n\n"));
        assert_eq!(
            t.kv.len(),
            2,
            "one presence key a window its lifetime reaches"
        );
        assert!(opened.broadcast.is_some());
        let key = session_key(&t.services()).expect("a key");
        let session = Session::verify(&session_in(resp.body()), &key).expect("session");
        assert_eq!(session.lease.page.as_deref(), Some(page_id.as_str()));
    }

    #[test]
    fn only_fanout_may_open_a_stream() {
        let t = services();
        let err = handle(
            &request("GET", "/sse?siteId=shop", false, ""),
            &t.services(),
        )
        .expect_err("unsigned");
        assert_eq!(err.status(), 403);
        assert_eq!(t.kv.len(), 0);
        let err = handle(
            &request("GET", "/sse?siteId=a%20b", true, ""),
            &t.services(),
        )
        .expect_err("bad site");
        assert_eq!(err.code(), "invalid_site_id");
    }

    #[test]
    fn heartbeats_refresh_and_a_leave_removes_the_presence() {
        let t = services();
        let opened =
            handle(&request("GET", "/sse?siteId=shop", true, ""), &t.services()).expect("open");
        let session = session_in(opened.response.body());
        // Twenty seconds later the presence reaches a third window: the heartbeat writes its key.
        t.set_time(NOW_MS + 20_000);
        let body = json!({ "session": session }).to_string();
        let beat = handle(
            &request("POST", HEARTBEAT_PATH, false, &body),
            &t.services(),
        )
        .expect("heartbeat");
        assert_eq!(beat.response.status(), 200);
        let reply: serde_json::Value = serde_json::from_slice(beat.response.body()).expect("json");
        let next = reply["session"].as_str().expect("session").to_string();
        assert_ne!(next, session);
        assert_eq!(t.kv.len(), 3);
        let shop = SiteId::parse("shop").expect("site");
        assert_eq!(
            crate::count::tally::count(&t.kv, &t.config, &shop, NOW_MS + 50_000).expect("count"),
            1,
            "alive past the first key's expiry"
        );
        let body = json!({ "session": next }).to_string();
        let left =
            handle(&request("POST", LEAVE_PATH, false, &body), &t.services()).expect("leave");
        assert_eq!(left.response.status(), 204);
        assert!(left.broadcast.is_some());
        assert_eq!(t.kv.len(), 0);
    }

    #[test]
    fn a_bad_session_or_body_is_a_clear_400() {
        let t = services();
        for (body, code) in [
            ("", "bad_request"),
            ("{}", "bad_request"),
            (r#"{"session":"x"}"#, "invalid_session"),
            (r#"{"session":"shop|zz|1|-|0|-"}"#, "invalid_session"),
            (
                r#"{"session":"shop|0123456789abcdef0123456789abcdef|1|/x|0|-"}"#,
                "invalid_session",
            ),
        ] {
            let err = handle(&request("POST", HEARTBEAT_PATH, false, body), &t.services())
                .expect_err(body);
            assert_eq!((err.status(), err.code()), (400, code), "{body}");
        }
        let big = "x".repeat(MAX_BODY + 1);
        let err =
            handle(&request("POST", LEAVE_PATH, false, &big), &t.services()).expect_err("big");
        assert_eq!(err.status(), 413);
        let err =
            handle(&request("GET", HEARTBEAT_PATH, false, ""), &t.services()).expect_err("get");
        assert_eq!(err.status(), 405);
        assert_eq!(t.kv.len(), 0);
    }

    #[test]
    fn a_session_the_service_did_not_sign_is_refused() {
        let t = services();
        let opened =
            handle(&request("GET", "/sse?siteId=shop", true, ""), &t.services()).expect("open");
        let genuine = session_in(opened.response.body());
        let (payload, tag) = genuine.rsplit_once('|').expect("signed");
        let other_id = payload.replacen(&payload[5..37], &"0".repeat(32), 1);
        let flipped: String = tag.chars().rev().collect();
        for forged in [
            payload.to_string(),
            format!("{other_id}|{tag}"),
            format!("{payload}|{flipped}"),
            format!("{payload}|{}", "0".repeat(32)),
        ] {
            let body = json!({ "session": forged }).to_string();
            for path in [HEARTBEAT_PATH, LEAVE_PATH] {
                let err =
                    handle(&request("POST", path, false, &body), &t.services()).expect_err(&forged);
                assert_eq!(err.code(), "invalid_session", "{forged}");
            }
        }
        assert_eq!(t.kv.len(), 2, "the genuine presence only");
        // Without a secret to sign with, no stream opens.
        let mut bare = services();
        bare.secrets.clear();
        let err = handle(
            &request("GET", "/sse?siteId=shop", true, ""),
            &bare.services(),
        )
        .expect_err("no key");
        assert_eq!(err.status(), 503);
    }

    #[test]
    fn sessions_round_trip() {
        let session = Session {
            site: SiteId::parse("a.b-c").expect("site"),
            lease: Lease {
                id: "0123456789abcdef0123456789abcdef".into(),
                windows: vec![5, 7],
                page: Some("0123456789abcdef".into()),
            },
            totals: true,
            ticket: Some(3),
        };
        assert_eq!(Session::parse(&session.encode()), Ok(session.clone()));
        let key = [7u8; 32];
        assert_eq!(
            Session::verify(&session.sign(&key), &key),
            Ok(session.clone())
        );
        assert!(Session::verify(&session.sign(&key), &[8u8; 32]).is_err());
    }
}
