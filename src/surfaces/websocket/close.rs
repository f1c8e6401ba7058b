//! Closing: a connection's presence removed at once (a close, a disconnect, or a close from our
//! side with a code), or handed to the tab that takes over; its socket ticket given back once.

use crate::count::presence::{self, Lease};
use crate::count::{limits, snapshot};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::surfaces::websocket::connection::{Connection, Reply};
use crate::wire::error::CloseCode;
use crate::wire::websocket_events::Event;

/// A holding tab closes and hands its presence to the tab that takes over: the presence stays
/// (it expires with its TTL if no tab does), the ticket is given back, nothing is broadcast.
pub(super) fn hand_over(services: &Services, conn: &mut Connection) {
    release_ticket(services, conn);
    if let Some(lease) = conn.lease.take() {
        conn.lease = Some(Lease {
            windows: Vec::new(),
            ..lease
        });
        conn.lease_changed = true;
    }
}

/// Gives the client's socket ticket back, once.
pub(super) fn release_ticket(services: &Services, conn: &mut Connection) {
    if let (Some(client), Some(ticket)) = (&conn.client, conn.ticket.take()) {
        limits::release_socket(services.cache, &conn.site, client, ticket);
        conn.ticket_released = true;
    }
}

/// Removes the connection's presence at once.
pub(super) fn leave(services: &Services, conn: &mut Connection) {
    release_ticket(services, conn);
    let Some(lease) = conn.lease.take() else {
        return;
    };
    if lease.windows.is_empty() {
        return;
    }
    if let Err(e) = presence::leave(
        services.kv,
        services.clock,
        services.config,
        &conn.site,
        &lease,
    ) {
        // Whatever was not deleted counts until its window ends, then is never read again.
        services.log.emit(&Line::PresenceLeaveFailed {
            conn: &conn.id,
            site: &conn.site,
            error: &e.to_string(),
        });
    }
    snapshot::note_leave(services.cache, &conn.site, services.clock.now_ms());
    conn.lease = Some(Lease {
        windows: Vec::new(),
        ..lease
    });
    conn.lease_changed = true;
    conn.wants_broadcast = true;
}

/// Closes the connection from our side, with a code and a log line.
pub(super) fn close(
    services: &Services,
    conn: &mut Connection,
    reply: &mut Reply,
    code: CloseCode,
    why: &str,
) {
    services.log.emit(&Line::WsClose {
        conn: &conn.id,
        site: &conn.site,
        code: code.code(),
        reason: why,
    });
    leave(services, conn);
    reply.events.push(Event::close(code.code(), code.reason()));
    conn.closed = true;
}
