//! The WebSocket-over-HTTP endpoint: what this service does with each event Fanout forwards.
//!
//! Fanout holds the browser's socket; for every batch of events on it, it POSTs them here and
//! applies the reply: events to send to the browser, control messages (subscribe), and meta
//! to remember for the connection. The site is fixed at OPEN, from the `siteId` query
//! parameter of the original upgrade request, and stored as connection meta; later requests
//! read it from meta only, so nothing a client sends can move its connection to another site.

use http::{header, Request, Response};

use crate::error::{CloseCode, HttpError};
use crate::grip;
use crate::request::{header, query_param};
use crate::response::finish;
use crate::site::SiteId;
use crate::websocket_events::{self, Event};
use crate::Services;

/// Connection meta holding the connection's site.
pub const META_SITE: &str = "Site";

/// The facts of one WebSocket-over-HTTP request, checked.
#[derive(Debug)]
struct Call {
    connection_id: String,
    site: SiteId,
    events: Vec<Event>,
}

/// What the reply to one request carries.
#[derive(Debug, Default)]
struct Reply {
    events: Vec<Event>,
    set_meta: Vec<(&'static str, String)>,
    /// Whether this reply accepts the connection (so GRIP must be switched on).
    accepts: bool,
}

/// Handles one WebSocket-over-HTTP request from Fanout.
pub fn handle(req: &Request<Vec<u8>>, _services: &Services) -> Result<Response<Vec<u8>>, HttpError> {
    let call = read_call(req)?;
    let mut reply = Reply::default();
    for event in &call.events {
        on_event(&call, event, &mut reply);
        if closes(&reply) {
            break;
        }
    }
    Ok(encode_reply(reply))
}

/// Checks the request and reads its connection, site and events.
fn read_call(req: &Request<Vec<u8>>) -> Result<Call, HttpError> {
    if req.method() != http::Method::POST {
        return Err(HttpError::MethodNotAllowed { allow: "POST" });
    }
    if header(req, "content-type") != Some(websocket_events::CONTENT_TYPE) {
        return Err(HttpError::UnsupportedMediaType);
    }
    let connection_id = header(req, grip::CONNECTION_ID_HEADER)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| HttpError::BadRequest("missing or invalid Connection-Id".into()))?
        .to_string();
    let events = websocket_events::parse(req.body())?;
    let site = site_of(req, &events)?;
    Ok(Call {
        connection_id,
        site,
        events,
    })
}

/// The connection's site: from meta once set, from the query at OPEN.
fn site_of(req: &Request<Vec<u8>>, events: &[Event]) -> Result<SiteId, HttpError> {
    let meta_name = format!("{}{}", grip::META_PREFIX, META_SITE);
    if let Some(site) = header(req, &meta_name) {
        return Ok(SiteId::parse(site)?);
    }
    if events.first() == Some(&Event::Open) {
        return Ok(SiteId::from_query(query_param(req, "siteId").as_deref())?);
    }
    // A connection that was never opened through us has no site: refuse it.
    Err(HttpError::BadRequest(
        "connection has no site; it must start with OPEN".into(),
    ))
}

/// Applies one event to the reply.
fn on_event(call: &Call, event: &Event, reply: &mut Reply) {
    match event {
        Event::Open => {
            reply.accepts = true;
            reply.events.push(Event::Open);
            reply.events.push(grip::subscribe(&call.site.channel()));
            reply.set_meta.push((META_SITE, call.site.to_string()));
        }
        Event::Text(_) => {
            // The presence protocol (join, heartbeat) is handled by the presence layer.
        }
        Event::Binary(_) => {
            log_close(call, CloseCode::UnsupportedData, "binary frames are not part of the protocol");
            reply
                .events
                .push(Event::close(CloseCode::UnsupportedData.code(), "binary not supported"));
        }
        Event::Ping(payload) => reply.events.push(Event::Pong(payload.clone())),
        Event::Pong(_) => {}
        Event::Close { code, .. } => {
            // Answer a close with a close, echoing the peer's code as RFC 6455 asks.
            reply
                .events
                .push(Event::close(code.unwrap_or(CloseCode::Normal.code()), ""));
        }
        Event::Disconnect => {}
    }
}

fn closes(reply: &Reply) -> bool {
    reply
        .events
        .iter()
        .any(|e| matches!(e, Event::Close { .. } | Event::Disconnect))
}

fn log_close(call: &Call, code: CloseCode, why: &str) {
    println!(
        "liveuser ws-close conn={} site={} code={} reason={why:?}",
        call.connection_id,
        call.site,
        code.code()
    );
}

fn encode_reply(reply: Reply) -> Response<Vec<u8>> {
    let mut builder = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, websocket_events::CONTENT_TYPE);
    if reply.accepts {
        builder = builder.header(grip::EXTENSIONS_HEADER, grip::EXTENSIONS_VALUE);
    }
    for (name, value) in &reply.set_meta {
        builder = builder.header(format!("{}{}", grip::SET_META_PREFIX, name), value.as_str());
    }
    finish(builder, websocket_events::encode(&reply.events))
}
