//! The SSE fallback: for networks that block WebSockets (or `transport=sse`), the client reads
//! the same counts from an EventSource stream that Fanout holds (GRIP `Grip-Hold: stream`, on
//! the same channels as the sockets). Its presence belongs to the held stream: Fanout itself
//! renews it, by calling the service while it holds the stream.
//!
//! - `GET /sse?siteId=…` (the socket's parameters): the browser's request is handed to Fanout
//!   as an upgrade is (same checks, same per-client limits); Fanout asks this service back,
//!   signed, and `open` joins the reader (a KV write a window), counts its visit, and answers with
//!   the hold (see [`hold`]: its channels and its next link), a `session` event and the first
//!   count. Publishes reach the stream as `data: <the same JSON>` events.
//! - `GET /sse/alive/<session>`: Fanout's call while it holds the stream ([`alive`]), signed by
//!   Fanout; it renews the presence and the socket ticket and answers the next instruction.
//! - `POST /sse/leave` with `{"session":…}` (the client's `sendBeacon` on `pagehide`, as text,
//!   so no CORS preflight): `leave` removes the presence at once, and Fanout's next call ends
//!   the stream rather than renew it. Leaves count against the client's API requests a minute.
//! - `POST /sse/heartbeat`: retired (410). Heartbeats a browser sent kept a presence with a token
//!   it could replay after its stream closed; the held stream keeps it now.
//!
//! What a stream carries from call to call is its [`session`].

mod alive;
mod hold;
mod session;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use http::{header, Method, Request, Response};
use serde::Deserialize;
use serde_json::json;

use crate::count::first_count::{self, Reader};
use crate::count::limits::{self, ClientKey};
use crate::count::presence::{self, Lease};
use crate::count::{broadcast, registry, snapshot, visits};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::surfaces::{access, handoff, params, Handled};
use crate::wire::error::HttpError;
use crate::wire::event_stream;
use crate::wire::publish::PublishItem;
use crate::wire::request::header as header_value;
use crate::wire::response::finish;

pub use hold::ALIVE_PREFIX;
pub use session::{session_keys, Session};

/// Where a browser opens its stream.
pub const STREAM_PATH: &str = "/sse";
/// Where browsers sent heartbeats before a stream's presence was kept by the stream.
pub const HEARTBEAT_PATH: &str = "/sse/heartbeat";
/// Where it says it leaves.
pub const LEAVE_PATH: &str = "/sse/leave";
/// The largest leave body accepted.
pub const MAX_BODY: usize = 1024;

/// Whether `path` belongs to the SSE fallback.
pub fn owns(path: &str) -> bool {
    matches!(path, STREAM_PATH | HEARTBEAT_PATH | LEAVE_PATH) || path.starts_with(ALIVE_PREFIX)
}

/// Answers the stream endpoints.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let path = req.uri().path();
    match (path, req.method()) {
        (_, &Method::OPTIONS) => Ok(preflight().into()),
        (STREAM_PATH, &Method::GET) => open(req, services),
        (STREAM_PATH, _) => Err(HttpError::MethodNotAllowed { allow: "GET" }),
        (HEARTBEAT_PATH, _) => Err(HttpError::Gone(
            "a stream's presence is kept while Fanout holds the stream: no heartbeats needed"
                .into(),
        )),
        (LEAVE_PATH, &Method::POST) => leave(req, services),
        (_, &Method::GET) if path.starts_with(ALIVE_PREFIX) => {
            alive::alive(req, services, &path[ALIVE_PREFIX.len()..])
        }
        (_, _) if path.starts_with(ALIVE_PREFIX) => {
            Err(HttpError::MethodNotAllowed { allow: "GET" })
        }
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
        if let Ok(params) = params::connect_params(services, req.uri().query()) {
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
    let keys = session::required(session::session_keys(services))?;
    let link_keys = session::required(session::link_keys(services))?;
    let params = params::connect_params(services, req.uri().query())?;
    let site = params.site.clone();
    let entry = registry::check_site(services, &site)?;
    registry::check_origin(&entry, &site, header_value(req, "origin"))?;
    let uncounted = header_value(req, handoff::UNCOUNTED_HEADER) == Some("1");
    // A tab taking over a closing tab's presence (tabs that fell back to a stream together).
    let took_over = params.handover.is_some();
    let id = params
        .handover
        .clone()
        .unwrap_or_else(|| presence::new_id_from(services.ids.random_u64s()));
    let now = services.clock.now_ms();
    let lease = Lease {
        id,
        windows: Vec::new(),
        page: params.page.clone(),
        country: None,
    }
    .in_country(header_value(req, handoff::COUNTRY_HEADER).map(str::to_string));
    let lease = if uncounted {
        lease
    } else {
        presence::join_as(services.kv, services.config, &site, lease, now).map_err(|e| {
            services.log.emit(&Line::PresenceJoinFailed {
                conn: "sse",
                site: &site,
                error: &e.to_string(),
            });
            HttpError::Unavailable("presence could not be recorded; try again".into())
        })?
    };
    if let (false, Some(id), Some(name)) = (uncounted, &lease.page, &params.page_name) {
        crate::count::page::remember_name(services, &site, id, name);
    }
    let visited = !uncounted
        && params.totals
        && params.visit
        && visits::count_visit(services, "sse", &site, client.as_ref());
    let session = Session {
        site: site.clone(),
        lease,
        totals: params.totals,
        ticket,
        client: client.clone(),
        stream: session::new_stream_id(services),
    };
    let mut body = event_stream::event(
        Some("session"),
        &json!({"type": "session", "session": session.sign(&keys)}).to_string(),
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
    Ok(Handled {
        response: finish(
            hold::held(&session, &link_keys, services.config),
            body.into_bytes(),
        ),
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

/// A leave's request, checked: the session it carries (signed by this service) and the
/// request's client.
struct Checked {
    session: Session,
    client: Option<ClientKey>,
}

/// Checks a leave, within its client's share of API requests.
fn checked(req: &Request<Vec<u8>>, services: &Services) -> Result<Checked, HttpError> {
    let keys = session::required(session::session_keys(services))?;
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
        session: Session::verify(&body.session, &keys)?,
        client,
    })
}

/// A stream's reader leaves (the page's `sendBeacon`): its presence goes at once, its ticket is
/// given back, and its stream ends: Fanout is told to close it wherever it holds it, and (should
/// that publish fail) Fanout's next call for it at this POP ends it.
fn leave(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let Checked { session, client } = checked(req, services)?;
    let site = session.site.clone();
    alive::mark_left(services, &session);
    let close = PublishItem::close_streams(hold::own_channel(&session));
    if let Err(e) = services.publisher.publish(&[close]) {
        services.log.emit(&Line::Detail {
            event: "stream-close-failed",
            site: &site,
            detail: &e.to_string(),
        });
    }
    // The ticket is the client's that took it; a beacon from another address gives back none.
    if let (Some(ticket), Some(owner)) = (session.ticket, &session.client) {
        if client.as_ref() == Some(owner) {
            limits::release_socket(services.cache, &site, owner, ticket);
        }
    }
    let no_content = || access::with_cors(finish(Response::builder().status(204), Vec::new()));
    if session.lease.windows.is_empty() {
        return Ok(no_content().into());
    }
    // The session is the one the stream opened with: Fanout's calls have written windows
    // since that it does not name, so every window due now goes.
    if let Err(e) = presence::leave_all_due(
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
