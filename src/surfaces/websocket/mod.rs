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
//!
//! The connection's life is split by what happens to it: [`connection`] (its state, read from
//! and written back to meta), `open`, `messages` and `close`; this file takes one request
//! through them.

mod close;
pub mod connection;
mod messages;
mod open;

use http::{header, Request, Response};

use crate::count::{broadcast, handover};
use crate::platform::Services;
use crate::surfaces::handoff::check_signature;
use crate::surfaces::Handled;
use crate::wire::error::{CloseCode, HttpError};
use crate::wire::grip;
use crate::wire::request::header;
use crate::wire::response::finish;
use crate::wire::websocket_events::{self, CodecError, Event};

use close::{close, hand_over, leave, release_ticket};
use connection::{encode_reply, log_fields, open_connection, Connection, Reply};
use messages::{on_text, refresh, settle_page};
use open::on_open;

/// Handles one WebSocket-over-HTTP request from Fanout.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    check_signature(req, services)?;
    let connection_id = header(req, grip::CONNECTION_ID_HEADER)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| HttpError::BadRequest("missing or invalid Connection-Id".into()))?
        .to_string();
    let events = match websocket_events::parse(req.body()) {
        Ok(events) => events,
        // A batch over the size limit closes its connection (1009) in a 200 reply: a non-200
        // would make Fanout drop the socket without a DISCONNECT, leaving its presence counted
        // for a whole TTL.
        Err(CodecError::TooLarge { len, .. }) => {
            return Ok(too_large(services, req, connection_id, len))
        }
        Err(e) => return Err(e.into()),
    };
    let mut conn = open_connection(services, req, &events, connection_id)?;
    let mut reply = Reply::default();
    // A request with no events is Fanout's keep-alive call (see `Config::keep_alive_secs`):
    // the connection is alive even if the page's timers are throttled.
    if events.is_empty() {
        refresh(services, &mut conn);
        conn.heartbeat_seen = true;
    }
    for event in &events {
        if let Err(e) = on_event(services, &mut conn, event, &mut reply) {
            // A refused request ends the connection (Fanout drops it): its ticket is free.
            release_ticket(services, &mut conn);
            return Err(e);
        }
        if conn.closed {
            break;
        }
    }
    settle_page(services, &mut conn, &mut reply);
    let log_fields = log_fields(&conn, &events);
    let broadcast = if conn.wants_broadcast {
        broadcast::schedule(services, &conn.site)
    } else if conn.heartbeat_seen && !conn.closed {
        // Connections that vanished without an event are found by a sweep, claimed at most
        // once a sweep interval per site: no heartbeat lists anything.
        broadcast::sweep_due(services, &conn.site)
    } else {
        None
    };
    Ok(Handled {
        response: encode_reply(&conn, reply, services.config.keep_alive_secs()),
        broadcast,
        log_fields,
    })
}

/// The reply to a batch over the size limit: the connection is closed with 1009 and its
/// presence removed, as for any message too big.
fn too_large(services: &Services, req: &Request<Vec<u8>>, id: String, len: usize) -> Handled {
    let mut reply = Reply::default();
    let why = format!("a batch of {len} bytes or more");
    match open_connection(services, req, &[], id.clone()) {
        Ok(mut conn) => {
            close(
                services,
                &mut conn,
                &mut reply,
                CloseCode::MessageTooBig,
                &why,
            );
            let log_fields = log_fields(&conn, &[]);
            Handled {
                response: encode_reply(&conn, reply, services.config.keep_alive_secs()),
                broadcast: conn
                    .wants_broadcast
                    .then(|| broadcast::schedule(services, &conn.site))
                    .flatten(),
                log_fields,
            }
        }
        // Not a connection opened through this service: nothing to remove, close it anyway.
        Err(_) => {
            let code = CloseCode::MessageTooBig;
            reply.events.push(Event::close(code.code(), code.reason()));
            let response = Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, websocket_events::CONTENT_TYPE);
            Handled {
                response: finish(response, websocket_events::encode(&reply.events)),
                broadcast: None,
                log_fields: format!("conn={id} events=TOO-LARGE"),
            }
        }
    }
}

/// Applies one event. Errors here are HTTP errors: at OPEN they refuse the upgrade.
fn on_event(
    services: &Services,
    conn: &mut Connection,
    event: &Event,
    reply: &mut Reply,
) -> Result<(), HttpError> {
    match event {
        Event::Open => on_open(services, conn, reply)?,
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
            // Only a tab group's socket hands over: from any other, 4001 would free its
            // ticket and leave its presence counted (open/close loops made phantoms).
            if *code == Some(handover::CLOSE_CODE) && conn.shared {
                hand_over(services, conn);
            } else {
                leave(services, conn);
            }
            // Answer a close with a close, echoing the peer's code as RFC 6455 asks, when it
            // is one that may be sent on the wire.
            let echo = code
                .filter(|c| CloseCode::may_be_sent(*c))
                .unwrap_or(CloseCode::Normal.code());
            reply.events.push(Event::close(echo, ""));
            conn.closed = true;
        }
        Event::Disconnect => {
            leave(services, conn);
            conn.closed = true;
        }
    }
    Ok(())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
