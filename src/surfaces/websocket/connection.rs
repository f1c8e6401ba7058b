//! One connection's state while a request's events are applied: read from the connection's
//! meta (or, at OPEN, from the upgrade's query and the handoff's headers), and written back as
//! meta in the reply, with the reply's events.

use http::{header, Request, Response};

use crate::count::limits::ClientKey;
use crate::count::presence::Lease;
use crate::platform::Services;
use crate::surfaces::handoff::{CLIENT_HEADER, COUNTRY_HEADER, TICKET_HEADER, UNCOUNTED_HEADER};
use crate::surfaces::params::{connect_params, ConnectParams};
use crate::wire::error::HttpError;
use crate::wire::grip;
use crate::wire::request::header;
use crate::wire::response::finish;
use crate::wire::site::SiteId;
use crate::wire::websocket_events::{self, Event};

/// Connection meta: the connection's site.
pub const META_SITE: &str = "Site";

/// Connection meta: the presence id.
pub const META_PRESENCE_ID: &str = "Presence-Id";

/// Connection meta: the windows the connection has presence keys in (see `presence`).
pub const META_PRESENCE_WINDOWS: &str = "Presence-Windows";

/// Connection meta of connections opened before presence was kept by window: their keys'
/// expiries (read only, so they go on being counted after the deploy).
pub const META_LEGACY_EXPIRIES: &str = "Presence-Exp";

/// Connection meta: `1` when the connection asked for total visits.
pub const META_TOTALS: &str = "Totals";

/// Connection meta: how many visits the connection relayed for other tabs.
pub const META_RELAYED_VISITS: &str = "Relayed-Visits";

/// Connection meta: the id of the page the connection is counted on.
pub const META_PAGE: &str = "Page";

/// Connection meta: how many page moves the connection made.
pub const META_PAGE_MOVES: &str = "Page-Moves";

/// Connection meta: when (ms) the connection last moved to another page.
pub const META_PAGE_MOVED: &str = "Page-Moved";

/// Connection meta: a page move waiting for its turn (the page id, or `-` for the site only).
pub const META_PAGE_PENDING: &str = "Page-Pending";

/// Connection meta: `1` when the connection's OPEN counted a visit.
pub const META_VISITED: &str = "Visited";

/// Connection meta: `1` when the connection is shared by a browser's tabs (see `handover`),
/// and `1` when it took over the presence of a closing tab's connection.
pub const META_SHARED: &str = "Shared";

pub const META_TOOK_OVER: &str = "Took-Over";

/// Connection meta: `1` once the connection's first `join` was handled.
pub const META_JOINED: &str = "Joined";

/// Connection meta: when its presence was first written (ms, at OPEN), so its first count,
/// made at its `join`, knows whether the last broadcast counted it already.
pub const META_PRESENCE_SINCE: &str = "Presence-Since";

/// Connection meta: the client's key (see `limits`), and the socket ticket it holds.
pub const META_CLIENT: &str = "Client";

pub const META_TICKET: &str = "Ticket";

/// Connection meta: the reader's country, as the handoff's geolocation placed it (see
/// `country`); its presence keys carry it.
pub const META_COUNTRY: &str = "Country";

/// The state of one connection while a request's events are applied.
pub(super) struct Connection {
    pub(super) id: String,
    pub(super) site: SiteId,
    /// Whether this connection shows total visits.
    pub(super) totals: bool,
    /// The upgrade's query, read at OPEN.
    pub(super) params: Option<ConnectParams>,
    /// The page's `Origin`, as the browser sent it with the upgrade.
    pub(super) origin: Option<String>,
    pub(super) lease: Option<Lease>,
    pub(super) lease_changed: bool,
    /// When its presence was first written (see [`META_PRESENCE_SINCE`]).
    pub(super) presence_since: Option<u64>,
    pub(super) wants_broadcast: bool,
    pub(super) heartbeat_seen: bool,
    /// Its first `join` was handled (earlier, or in this request).
    pub(super) joined: bool,
    /// Its OPEN counted a visit; it is shared by a browser's tabs.
    pub(super) visited: bool,
    pub(super) shared: bool,
    pub(super) took_over: bool,
    /// Visits it relayed for other tabs, and whether that changed in this request.
    pub(super) relayed_visits: u32,
    pub(super) relayed_changed: bool,
    /// Its client's key and socket ticket, when it came through this service's handoff.
    pub(super) client: Option<ClientKey>,
    pub(super) ticket: Option<u32>,
    /// That happened in this request (meta to set).
    pub(super) joined_now: bool,
    /// Its ticket was given back in this request (meta to clear, so no later request of
    /// this connection gives it back again or keeps it).
    pub(super) ticket_released: bool,
    /// A crawler or automated browser, marked so at the handoff (OPEN only).
    pub(super) uncounted: bool,
    /// At OPEN: the country the handoff placed the reader in (later, the lease carries it).
    pub(super) country: Option<String>,
    /// Page moves it made, and whether that changed in this request.
    pub(super) page_moves: u32,
    pub(super) page_moves_changed: bool,
    /// When it last moved, a move waiting for its turn (`Some(None)`: off pages), and the
    /// move this request's messages asked for last (see `messages::settle_page`).
    pub(super) page_moved_ms: Option<u64>,
    pub(super) page_pending: Option<Option<String>>,
    pub(super) page_asked: Option<Option<String>>,
    /// The id and name of the page asked for last in this request, when it has an id.
    pub(super) page_asked_name: Option<(String, String)>,
    pub(super) closed: bool,
}

/// What the reply carries.
#[derive(Default)]
pub(super) struct Reply {
    pub(super) events: Vec<Event>,
    pub(super) accepts: bool,
}

pub(super) fn meta<'a>(req: &'a Request<Vec<u8>>, name: &str) -> Option<&'a str> {
    header(req, &format!("{}{}", grip::META_PREFIX, name))
}

/// The connection's site and lease: from meta once set, from the query at OPEN.
pub(super) fn open_connection(
    services: &Services,
    req: &Request<Vec<u8>>,
    events: &[Event],
    id: String,
) -> Result<Connection, HttpError> {
    let (site, totals, params) = match meta(req, META_SITE) {
        Some(site) => (
            SiteId::parse(site)?,
            meta(req, META_TOTALS) == Some("1"),
            None,
        ),
        None if events.first() == Some(&Event::Open) => {
            let params = connect_params(services, req.uri().query())?;
            (params.site.clone(), params.totals, Some(params))
        }
        // A connection that was never opened through us has no site: refuse it.
        None => {
            return Err(HttpError::BadRequest(
                "connection has no site; it must start with OPEN".into(),
            ))
        }
    };
    // A connection opened before presence was kept by window names its key expiries instead:
    // read as windows, they lie far ahead, and its next heartbeat writes its windows afresh.
    let windows = meta(req, META_PRESENCE_WINDOWS).or_else(|| meta(req, META_LEGACY_EXPIRIES));
    let lease = match (meta(req, META_PRESENCE_ID), windows) {
        (Some(pid), exp) => Some(
            Lease::from_meta(pid, exp.unwrap_or(""))
                .ok_or_else(|| HttpError::BadRequest("malformed presence meta".into()))?
                .on_page(meta(req, META_PAGE).map(str::to_string))
                .in_country(meta(req, META_COUNTRY).map(str::to_string)),
        ),
        (None, _) => None,
    };
    let params_given = params.is_some();
    Ok(Connection {
        id,
        site,
        totals,
        params,
        origin: header(req, "origin").map(str::to_string),
        lease,
        lease_changed: false,
        presence_since: meta(req, META_PRESENCE_SINCE).and_then(|v| v.parse().ok()),
        wants_broadcast: false,
        joined: meta(req, META_JOINED) == Some("1"),
        visited: meta(req, META_VISITED) == Some("1"),
        shared: meta(req, META_SHARED) == Some("1"),
        took_over: meta(req, META_TOOK_OVER) == Some("1"),
        relayed_visits: meta(req, META_RELAYED_VISITS)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        relayed_changed: false,
        // From the handoff's headers at OPEN (only this service sets them), from the meta
        // this service set afterwards.
        client: if params_given {
            header(req, CLIENT_HEADER)
        } else {
            meta(req, META_CLIENT)
        }
        .and_then(ClientKey::parse),
        ticket: if params_given {
            header(req, TICKET_HEADER)
        } else {
            meta(req, META_TICKET)
        }
        .and_then(|t| t.parse().ok()),
        ticket_released: false,
        uncounted: params_given && header(req, UNCOUNTED_HEADER) == Some("1"),
        country: header(req, COUNTRY_HEADER)
            .filter(|_| params_given)
            .map(str::to_string),
        page_moves: meta(req, META_PAGE_MOVES)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        page_moves_changed: false,
        page_moved_ms: meta(req, META_PAGE_MOVED).and_then(|ms| ms.parse().ok()),
        page_pending: meta(req, META_PAGE_PENDING).and_then(|p| match p {
            "-" => Some(None),
            id if crate::count::page::is_page_id(id) => Some(Some(id.to_string())),
            _ => None,
        }),
        page_asked: None,
        page_asked_name: None,
        joined_now: false,
        heartbeat_seen: false,
        closed: false,
    })
}

pub(super) fn log_fields(conn: &Connection, events: &[Event]) -> String {
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    format!(
        "conn={} site={} events={}",
        conn.id,
        conn.site,
        names.join(",")
    )
}

pub(super) fn encode_reply(
    conn: &Connection,
    reply: Reply,
    keep_alive_secs: u32,
) -> Response<Vec<u8>> {
    let mut builder = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, websocket_events::CONTENT_TYPE);
    if reply.accepts {
        builder = builder
            .header(grip::EXTENSIONS_HEADER, grip::EXTENSIONS_VALUE)
            .header(grip::KEEP_ALIVE_HEADER, keep_alive_secs)
            .header(set_meta(META_SITE), conn.site.as_str());
        if conn.totals {
            builder = builder.header(set_meta(META_TOTALS), "1");
        }
        if conn.visited {
            builder = builder.header(set_meta(META_VISITED), "1");
        }
        if conn.shared {
            builder = builder.header(set_meta(META_SHARED), "1");
        }
        if conn.took_over {
            builder = builder.header(set_meta(META_TOOK_OVER), "1");
        }
        if let Some(client) = &conn.client {
            builder = builder.header(set_meta(META_CLIENT), client.as_str());
        }
        if let Some(ticket) = conn.ticket {
            builder = builder.header(set_meta(META_TICKET), ticket.to_string());
        }
    }
    if conn.relayed_changed {
        builder = builder.header(set_meta(META_RELAYED_VISITS), conn.relayed_visits);
    }
    if conn.page_moves_changed {
        builder = builder.header(set_meta(META_PAGE_MOVES), conn.page_moves);
        if let Some(ms) = conn.page_moved_ms {
            builder = builder.header(set_meta(META_PAGE_MOVED), ms);
        }
        let pending = match &conn.page_pending {
            Some(Some(id)) => id.as_str(),
            Some(None) => "-",
            None => "",
        };
        builder = builder.header(set_meta(META_PAGE_PENDING), pending);
    }
    if conn.ticket_released {
        builder = builder.header(set_meta(META_TICKET), "");
    }
    if conn.joined_now {
        builder = builder.header(set_meta(META_JOINED), "1");
    }
    if conn.lease_changed {
        if let Some(lease) = &conn.lease {
            builder = builder
                .header(set_meta(META_PRESENCE_ID), lease.id.as_str())
                .header(set_meta(META_PRESENCE_WINDOWS), lease.windows_meta())
                .header(set_meta(META_PAGE), lease.page.as_deref().unwrap_or(""))
                .header(
                    set_meta(META_COUNTRY),
                    lease.country.as_deref().unwrap_or(""),
                );
        }
        if let Some(since) = conn.presence_since {
            builder = builder.header(set_meta(META_PRESENCE_SINCE), since);
        }
    }
    finish(builder, websocket_events::encode(&reply.events))
}

pub(super) fn set_meta(name: &str) -> String {
    format!("{}{}", grip::SET_META_PREFIX, name)
}
