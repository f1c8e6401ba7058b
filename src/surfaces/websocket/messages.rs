//! The messages a connection sends once open: heartbeats, its first `join`, visits relayed for
//! other tabs, and page moves; a message that breaks the protocol closes the connection.

use crate::count::presence;
use crate::count::{handover, limits, page, visits};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::surfaces::websocket::close::close;
use crate::surfaces::websocket::connection::{Connection, Reply};
use crate::surfaces::websocket::open::{first_update, greet};
use crate::wire::error::CloseCode;
use crate::wire::grip;
use crate::wire::protocol::{self, ClientMessage, ProtocolError};
use crate::wire::websocket_events::Event;

pub(super) fn on_text(services: &Services, conn: &mut Connection, text: &str, reply: &mut Reply) {
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
            // A join arrives once the connection is surely subscribed (the subscription was
            // in the OPEN reply), so the broadcast it claims cannot miss this page, whereas the
            // one claimed at OPEN might be published before Fanout applied the subscription.
            // Only the first: a page that repeats it gets no more broadcasts for it.
            if !conn.joined {
                conn.wants_broadcast = true;
                conn.joined = true;
                conn.joined_now = true;
                greet(services, conn, reply);
            }
            // The site was fixed at OPEN; a join naming another one changes nothing.
            if let Some(asked) = site_id.filter(|s| s != conn.site.as_str()) {
                services.log.emit(&Line::JoinSiteIgnored {
                    conn: &conn.id,
                    site: &conn.site,
                    asked: &asked,
                });
            }
        }
        Ok(ClientMessage::Visit) => relayed_visit(services, conn),
        Ok(ClientMessage::Page { page }) => {
            // Only the last move a batch asks for is made (see `settle_page`).
            let id = page
                .as_ref()
                .map(|p| page::counted_id(services, &conn.site, p))
                .transpose()
                .map(Option::flatten);
            match id {
                Ok(id) => {
                    conn.page_asked_name = id.clone().zip(page);
                    conn.page_asked = Some(id);
                }
                Err(e) => close(
                    services,
                    conn,
                    reply,
                    CloseCode::InvalidPayload,
                    &e.to_string(),
                ),
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

/// Extends the connection's presence on a heartbeat (a KV write once a window), and its
/// socket ticket on every heartbeat and keep-alive call while Fanout holds it, counted or not:
/// an uncounted (crawler's) socket holds a share of the client's sockets as long as any.
/// (A connection that left gave its ticket back, and keeps nothing alive.)
pub(super) fn refresh(services: &Services, conn: &mut Connection) {
    if let (Some(client), Some(ticket)) = (&conn.client, conn.ticket) {
        let ttl = limits::socket_ticket_ttl_ms(services.config);
        limits::keep_socket(services.cache, &conn.site, client, ticket, ttl);
    }
    let Some(lease) = &conn.lease else { return };
    if lease.windows.is_empty() {
        return;
    }
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
        Err(e) => services.log.emit(&Line::PresenceRefreshFailed {
            conn: &conn.id,
            site: &conn.site,
            error: &e.to_string(),
        }),
    }
}

/// Counts a page view another tab relayed, within the connection's and the client's shares.
pub(super) fn relayed_visit(services: &Services, conn: &mut Connection) {
    let open = conn.lease.as_ref().is_some_and(|l| !l.windows.is_empty());
    if !open || !conn.totals || conn.relayed_visits >= handover::MAX_RELAYED_VISITS {
        return;
    }
    conn.relayed_visits += 1;
    conn.relayed_changed = true;
    if visits::count_visit(services, &conn.id, &conn.site, conn.client.as_ref()) {
        conn.wants_broadcast = true;
    }
}

/// After a request's messages: makes the last page move they asked for, or one still waiting
/// from an earlier request. A move costs writes (the new page's keys, deletes of the old), so
/// a connection moves at most once every [`page::MOVE_INTERVAL_MS`]: a move asked sooner waits
/// (in the connection's meta) and is made by the first request after that, its heartbeat at
/// the latest; a later ask replaces it. The client paces its moves the same way, so a page
/// that behaves never waits.
pub(super) fn settle_page(services: &Services, conn: &mut Connection, reply: &mut Reply) {
    if conn.closed {
        return;
    }
    let Some(page) = conn.page_asked.take().or_else(|| conn.page_pending.clone()) else {
        return;
    };
    let now = services.clock.now_ms();
    let due = conn
        .page_moved_ms
        .is_none_or(|at| now >= at.saturating_add(page::MOVE_INTERVAL_MS));
    if !due {
        if conn.page_pending.as_ref() != Some(&page) {
            conn.page_pending = Some(page);
            conn.page_moves_changed = true;
        }
        return;
    }
    if conn.page_pending.take().is_some() {
        conn.page_moves_changed = true;
    }
    move_page(services, conn, page, reply);
}

/// Moves the reader to another page (or off pages, `None`; a page id): its presence key names
/// the new page (one write; the old keys are deleted), its subscriptions follow, and the reply
/// tells it the new page's count. A connection moves at most `page::MAX_MOVES` times.
fn move_page(services: &Services, conn: &mut Connection, page: Option<String>, reply: &mut Reply) {
    let Some(lease) = conn.lease.as_ref().filter(|l| !l.windows.is_empty()) else {
        return;
    };
    if lease.page == page {
        return;
    }
    // Each move writes its windows' keys on the new page and deletes the old page's: a
    // connection has a budget of them.
    if conn.page_moves >= page::MAX_MOVES {
        services.log.emit(&Line::PageMoveLimited {
            conn: &conn.id,
            site: &conn.site,
        });
        return;
    }
    conn.page_moves += 1;
    conn.page_moves_changed = true;
    conn.page_moved_ms = Some(services.clock.now_ms());
    let old_page = lease.page.clone();
    match presence::move_to(
        services.kv,
        services.clock,
        services.config,
        &conn.site,
        lease,
        page,
    ) {
        Ok(moved) => {
            // The page's name, kept for the site's dashboard when this request asked for the
            // move made (a move's pace and budget bound these writes too).
            if let Some((id, name)) = conn.page_asked_name.take() {
                if moved.page.as_deref() == Some(id.as_str()) {
                    page::remember_name(services, &conn.site, &id, &name);
                }
            }
            conn.lease = Some(moved);
            conn.lease_changed = true;
            conn.wants_broadcast = true;
        }
        Err(e) => {
            services.log.emit(&Line::PresenceRefreshFailed {
                conn: &conn.id,
                site: &conn.site,
                error: &e.to_string(),
            });
            return;
        }
    }
    if let Some(old) = old_page {
        reply
            .events
            .push(grip::unsubscribe(&page::channel(&conn.site, &old)));
    }
    let new_page = conn.lease.as_ref().and_then(|l| l.page.clone());
    if let Some(new) = &new_page {
        reply
            .events
            .push(grip::subscribe(&page::channel(&conn.site, new)));
        if let Some(update) = first_update(services, conn, true) {
            reply.events.push(Event::Text(update));
        }
    }
}
