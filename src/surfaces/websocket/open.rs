//! Opening: OPEN admits the connection (site, origin, presence, visit) and subscribes it; its
//! first `join` is greeted with its first count.

use crate::count::first_count::{first_count, Reader};
use crate::count::presence::{self, Lease};
use crate::count::registry::{check_origin, check_site};
use crate::count::{page, visits};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::surfaces::websocket::connection::{Connection, Reply};
use crate::wire::error::HttpError;
use crate::wire::grip;
use crate::wire::protocol;
use crate::wire::websocket_events::Event;

pub(super) fn on_open(
    services: &Services,
    conn: &mut Connection,
    reply: &mut Reply,
) -> Result<(), HttpError> {
    // Fanout sends OPEN once per connection; a repeat would leak a presence key.
    if conn.lease.is_some() {
        return Err(HttpError::BadRequest("connection is already open".into()));
    }
    let entry = check_site(services, &conn.site)?;
    check_origin(&entry, &conn.site, conn.origin.as_deref())?;
    // A tab taking a closing tab's place keeps its presence: one reader, never a dip.
    let taken_over = conn.params.as_ref().and_then(|p| p.handover.clone());
    conn.took_over = taken_over.is_some();
    let id = taken_over.unwrap_or_else(|| presence::new_id_from(services.ids.random_u64s()));
    let page = conn.params.as_ref().and_then(|p| p.page.clone());
    let lease = Lease {
        id,
        windows: Vec::new(),
        page,
        country: None,
    }
    .in_country(conn.country.clone());
    let lease = if conn.uncounted {
        // In no count: a lease without keys, like one that left.
        Ok(lease)
    } else {
        presence::join_as(
            services.kv,
            services.config,
            &conn.site,
            lease,
            services.clock.now_ms(),
        )
    }
    .map_err(|e| {
        services.log.emit(&Line::PresenceJoinFailed {
            conn: &conn.id,
            site: &conn.site,
            error: &e.to_string(),
        });
        HttpError::Unavailable("presence could not be recorded; try again".into())
    })?;
    if let (false, Some(id), Some(name)) = (
        conn.uncounted,
        &lease.page,
        conn.params.as_ref().and_then(|p| p.page_name.as_deref()),
    ) {
        page::remember_name(services, &conn.site, id, name);
    }
    conn.presence_since = (!conn.uncounted).then(|| services.clock.now_ms());
    conn.lease = Some(lease);
    conn.lease_changed = true;
    conn.wants_broadcast = !conn.uncounted;
    let visited = !conn.uncounted
        && conn.params.as_ref().is_some_and(|p| p.totals && p.visit)
        && visits::count_visit(services, &conn.id, &conn.site, conn.client.as_ref());
    reply.accepts = true;
    reply.events.push(Event::Open);
    let channel = if conn.totals {
        conn.site.totals_channel()
    } else {
        conn.site.channel()
    };
    reply.events.push(grip::subscribe(&channel));
    if let Some(page_id) = conn.lease.as_ref().and_then(|l| l.page.as_deref()) {
        reply
            .events
            .push(grip::subscribe(&page::channel(&conn.site, page_id)));
    }
    conn.visited = visited;
    conn.shared = conn.params.as_ref().is_some_and(|p| p.share);
    Ok(())
}

/// What the reply to a connection's first `join` carries: its first count, and the token a
/// tab that takes it over names. (Not the OPEN reply: Pushpin holds text in the OPEN reply
/// back until the service next sends the connection something, so a count there would
/// arrive late and stale.)
pub(super) fn greet(services: &Services, conn: &Connection, reply: &mut Reply) {
    // Every connection learns its presence: a tab that takes a closing tab's place names it,
    // and so does the page itself when it reconnects (its POP died, its network dropped), so
    // it is not counted twice while its old presence waits to expire.
    if let Some(lease) = &conn.lease {
        reply
            .events
            .push(Event::Text(protocol::handover(&lease.id)));
    }
    if let Some(update) = first_update(services, conn, false) {
        reply.events.push(Event::Text(update));
    }
}

/// The connection's first count (see `count::first_count`); after a move to another page
/// (`moved`), its new page's.
pub(super) fn first_update(services: &Services, conn: &Connection, moved: bool) -> Option<String> {
    let reader = Reader {
        site: &conn.site,
        lease: conn.lease.as_ref()?,
        totals: conn.totals,
        visited: conn.visited,
        took_over: conn.took_over,
        // The presence was written at OPEN; a move writes it now.
        written_ms: if moved { None } else { conn.presence_since },
    };
    first_count(services, &reader, moved)
}
