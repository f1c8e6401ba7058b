//! The WebSocket-over-HTTP endpoint: what this service does with each event Fanout forwards.
//!
//! Fanout holds the browser's socket; for every batch of events on it, it POSTs them here and
//! applies the reply: events for the browser, control messages (subscribe), and meta to
//! remember for the connection.
//!
//! The site is fixed at OPEN, from the `siteId` query parameter of the original upgrade, and
//! kept in connection meta with the connection's presence lease; later requests read them from
//! meta only (meta reaches us only through Fanout, whose signature is checked first), so
//! nothing a client sends can move its connection to another site.

use http::{header, Request, Response};

use crate::broadcast;
use crate::error::{CloseCode, HttpError};
use crate::grip;
use crate::presence::{self, Lease};
use crate::protocol::{self, ClientMessage, ProtocolError};
use crate::request::{header, query_param};
use crate::response::finish;
use crate::site::SiteId;
use crate::websocket_events::{self, Event};
use crate::{Handled, Services};

/// Connection meta: the connection's site.
pub const META_SITE: &str = "Site";
/// Connection meta: the presence id.
pub const META_PRESENCE_ID: &str = "Presence-Id";
/// Connection meta: the expiries of the presence keys that may be alive.
pub const META_PRESENCE_EXP: &str = "Presence-Exp";

/// The state of one connection while a request's events are applied.
struct Connection {
    id: String,
    site: SiteId,
    lease: Option<Lease>,
    lease_changed: bool,
    presence_changed: bool,
    heartbeat_seen: bool,
    closed: bool,
}

/// What the reply carries.
#[derive(Default)]
struct Reply {
    events: Vec<Event>,
    accepts: bool,
}

/// Handles one WebSocket-over-HTTP request from Fanout.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    check_signature(req, services)?;
    let connection_id = header(req, grip::CONNECTION_ID_HEADER)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| HttpError::BadRequest("missing or invalid Connection-Id".into()))?
        .to_string();
    let events = websocket_events::parse(req.body())?;
    let mut conn = open_connection(req, &events, connection_id)?;
    let mut reply = Reply::default();
    for event in &events {
        on_event(services, req, &mut conn, event, &mut reply)?;
        if conn.closed {
            break;
        }
    }
    after_events(services, &mut conn);
    log_request(&conn, &events);
    let broadcast = if conn.presence_changed {
        broadcast::schedule(services, &conn.site)
    } else {
        None
    };
    Ok(Handled {
        response: encode_reply(&conn, reply),
        broadcast,
    })
}

fn check_signature(req: &Request<Vec<u8>>, services: &Services) -> Result<(), HttpError> {
    services
        .grip
        .verify(
            header(req, grip::SIGNATURE_HEADER),
            services.clock.now_secs(),
        )
        .map_err(|e| HttpError::Forbidden(e.to_string()))
}

fn meta<'a>(req: &'a Request<Vec<u8>>, name: &str) -> Option<&'a str> {
    header(req, &format!("{}{}", grip::META_PREFIX, name))
}

/// The connection's site and lease: from meta once set, from the query at OPEN.
fn open_connection(
    req: &Request<Vec<u8>>,
    events: &[Event],
    id: String,
) -> Result<Connection, HttpError> {
    let site = match meta(req, META_SITE) {
        Some(site) => SiteId::parse(site)?,
        None if events.first() == Some(&Event::Open) => {
            SiteId::from_query(query_param(req, "siteId").as_deref())?
        }
        // A connection that was never opened through us has no site: refuse it.
        None => {
            return Err(HttpError::BadRequest(
                "connection has no site; it must start with OPEN".into(),
            ))
        }
    };
    let lease = match (meta(req, META_PRESENCE_ID), meta(req, META_PRESENCE_EXP)) {
        (Some(pid), exp) => Some(
            Lease::from_meta(pid, exp.unwrap_or(""))
                .ok_or_else(|| HttpError::BadRequest("malformed presence meta".into()))?,
        ),
        (None, _) => None,
    };
    Ok(Connection {
        id,
        site,
        lease,
        lease_changed: false,
        presence_changed: false,
        heartbeat_seen: false,
        closed: false,
    })
}

/// Applies one event. Errors here are HTTP errors: at OPEN they refuse the upgrade.
fn on_event(
    services: &Services,
    req: &Request<Vec<u8>>,
    conn: &mut Connection,
    event: &Event,
    reply: &mut Reply,
) -> Result<(), HttpError> {
    match event {
        Event::Open => on_open(services, req, conn, reply)?,
        Event::Text(text) => on_text(services, conn, text, reply),
        Event::Binary(_) => close(
            services,
            conn,
            reply,
            CloseCode::UnsupportedData,
            "binary frames are not part of the protocol",
        ),
        Event::Ping(payload) => reply.events.push(Event::Pong(payload.clone())),
        Event::Pong(_) => {}
        Event::Close { code, .. } => {
            leave(services, conn);
            // Answer a close with a close, echoing the peer's code as RFC 6455 asks.
            reply
                .events
                .push(Event::close(code.unwrap_or(CloseCode::Normal.code()), ""));
            conn.closed = true;
        }
        Event::Disconnect => {
            leave(services, conn);
            conn.closed = true;
        }
    }
    Ok(())
}

fn on_open(
    services: &Services,
    req: &Request<Vec<u8>>,
    conn: &mut Connection,
    reply: &mut Reply,
) -> Result<(), HttpError> {
    // Fanout sends OPEN once per connection; a repeat would leak a presence key.
    if conn.lease.is_some() {
        return Err(HttpError::BadRequest("connection is already open".into()));
    }
    if let Some(client_id) = query_param(req, "clientId").filter(|c| c.len() > 128) {
        return Err(HttpError::BadRequest(format!(
            "clientId has {} characters; at most 128 are allowed",
            client_id.len()
        )));
    }
    let id = presence::new_id_from(services.ids.random_u64s());
    let lease = presence::join(
        services.kv,
        services.config,
        &conn.site,
        id,
        services.clock.now_ms(),
    )
    .map_err(|e| HttpError::Unavailable(format!("presence store: {e}")))?;
    conn.lease = Some(lease);
    conn.lease_changed = true;
    conn.presence_changed = true;
    reply.accepts = true;
    reply.events.push(Event::Open);
    reply.events.push(grip::subscribe(&conn.site.channel()));
    Ok(())
}

fn on_text(services: &Services, conn: &mut Connection, text: &str, reply: &mut Reply) {
    match protocol::parse(text) {
        Ok(ClientMessage::Heartbeat) => {
            refresh(services, conn);
            conn.heartbeat_seen = true;
            let now = services.clock.now_secs();
            reply
                .events
                .push(Event::Text(protocol::heartbeat(now, None)));
        }
        Ok(ClientMessage::Join { site_id }) => {
            // The site was fixed at OPEN; a join naming another one changes nothing.
            if site_id.as_deref().is_some_and(|s| s != conn.site.as_str()) {
                println!(
                    "liveuser join-site-ignored conn={} site={} asked={:?}",
                    conn.id,
                    conn.site,
                    site_id.unwrap_or_default()
                );
            }
        }
        Ok(ClientMessage::Unknown { .. }) => {}
        Err(ProtocolError::TooBig { len }) => close(
            services,
            conn,
            reply,
            CloseCode::MessageTooBig,
            &format!("message of {len} bytes"),
        ),
        Err(e) => close(
            services,
            conn,
            reply,
            CloseCode::InvalidPayload,
            &e.to_string(),
        ),
    }
}

/// Extends the connection's presence on a heartbeat (at most one KV write).
fn refresh(services: &Services, conn: &mut Connection) {
    let Some(lease) = &conn.lease else { return };
    match presence::refresh(
        services.kv,
        services.config,
        &conn.site,
        lease,
        services.clock.now_ms(),
    ) {
        Ok((updated, wrote)) => {
            conn.lease_changed |= wrote || updated != *lease;
            conn.lease = Some(updated);
        }
        // The connection stays up; its next heartbeat tries again before the key expires.
        Err(e) => println!(
            "liveuser presence-refresh-failed conn={} site={} error={e}",
            conn.id, conn.site
        ),
    }
}

/// Removes the connection's presence at once.
fn leave(services: &Services, conn: &mut Connection) {
    let Some(lease) = conn.lease.take() else {
        return;
    };
    if lease.expiries_ms.is_empty() {
        return;
    }
    if let Err(e) = presence::leave(services.kv, &conn.site, &lease) {
        // Whatever was not deleted expires by itself within the TTL.
        println!(
            "liveuser presence-leave-failed conn={} site={} error={e}",
            conn.id, conn.site
        );
    }
    conn.lease = Some(Lease {
        id: lease.id,
        expiries_ms: Vec::new(),
    });
    conn.lease_changed = true;
    conn.presence_changed = true;
}

/// Closes the connection from our side, with a code and a log line.
fn close(
    services: &Services,
    conn: &mut Connection,
    reply: &mut Reply,
    code: CloseCode,
    why: &str,
) {
    println!(
        "liveuser ws-close conn={} site={} code={} reason={why:?}",
        conn.id,
        conn.site,
        code.code()
    );
    leave(services, conn);
    reply.events.push(Event::close(code.code(), code.reason()));
    conn.closed = true;
}

/// After a heartbeat, a count that changed without any event (a connection that vanished)
/// is broadcast too.
fn after_events(services: &Services, conn: &mut Connection) {
    if conn.heartbeat_seen
        && !conn.presence_changed
        && broadcast::count_is_stale(services, &conn.site)
    {
        conn.presence_changed = true;
    }
}

fn log_request(conn: &Connection, events: &[Event]) {
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    println!(
        "liveuser ws conn={} site={} events={}",
        conn.id,
        conn.site,
        names.join(",")
    );
}

fn encode_reply(conn: &Connection, reply: Reply) -> Response<Vec<u8>> {
    let mut builder = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, websocket_events::CONTENT_TYPE);
    if reply.accepts {
        builder = builder
            .header(grip::EXTENSIONS_HEADER, grip::EXTENSIONS_VALUE)
            .header(set_meta(META_SITE), conn.site.as_str());
    }
    if conn.lease_changed {
        if let Some(lease) = &conn.lease {
            builder = builder
                .header(set_meta(META_PRESENCE_ID), lease.id.as_str())
                .header(set_meta(META_PRESENCE_EXP), lease.expiries_meta());
        }
    }
    finish(builder, websocket_events::encode(&reply.events))
}

fn set_meta(name: &str) -> String {
    format!("{}{}", grip::SET_META_PREFIX, name)
}
