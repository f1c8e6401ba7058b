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
use crate::config::{self, ConfigSource};
use crate::error::{CloseCode, HttpError};
use crate::floor::Floor;
use crate::grip;
use crate::limits::{self, ClientKey, Verdict};
use crate::log::Line;
use crate::presence::{self, Lease};
use crate::protocol::{self, ClientMessage, ProtocolError};
use crate::request::{header, parse_bool, query_value};
use crate::response::finish;
use crate::site::SiteId;
use crate::websocket_events::{self, CodecError, Event};
use crate::{handover, page, snapshot, totals, Handled, Services};

/// Connection meta: the connection's site.
pub const META_SITE: &str = "Site";
/// Connection meta: the presence id.
pub const META_PRESENCE_ID: &str = "Presence-Id";
/// Connection meta: the expiries of the presence keys that may be alive.
pub const META_PRESENCE_EXP: &str = "Presence-Exp";
/// Connection meta: `1` when the connection asked for total visits.
pub const META_TOTALS: &str = "Totals";
/// Connection meta: how many visits the connection relayed for other tabs.
pub const META_RELAYED_VISITS: &str = "Relayed-Visits";
/// Connection meta: the id of the page the connection is counted on.
pub const META_PAGE: &str = "Page";
/// Connection meta: how many page moves the connection made.
pub const META_PAGE_MOVES: &str = "Page-Moves";
/// The query parameter naming the page a reader is on (see `page`).
pub const PAGE_PARAM: &str = "page";
/// Connection meta: `1` when the connection's OPEN counted a visit.
pub const META_VISITED: &str = "Visited";
/// Connection meta: `1` when the connection is shared by a browser's tabs (see `handover`),
/// and `1` when it took over the presence of a closing tab's connection.
pub const META_SHARED: &str = "Shared";
pub const META_TOOK_OVER: &str = "Took-Over";
/// Connection meta: `1` once the connection's first `join` was handled.
pub const META_JOINED: &str = "Joined";
/// Connection meta: the client's key (see `limits`), and the socket ticket it holds.
pub const META_CLIENT: &str = "Client";
pub const META_TICKET: &str = "Ticket";
/// Headers this service puts on a WebSocket it hands to Fanout (after dropping any a client
/// sent), which Fanout passes on with the OPEN: the client's key and its socket ticket.
pub const CLIENT_HEADER: &str = "LiveUser-Client";
pub const TICKET_HEADER: &str = "LiveUser-Ticket";
/// Set by this service's handoff on the upgrade of a crawler or automated browser: its OPEN
/// joins the channels but writes no presence and counts no visit (see `automated`).
pub const UNCOUNTED_HEADER: &str = "LiveUser-Uncounted";

/// The longest `clientId` accepted (the original client sends a short random string).
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// What the upgrade request's query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    pub site: SiteId,
    /// `enableTotalCount`: the page shows total visits (default false).
    pub totals: bool,
    /// `visit`: whether this connection starts a page view (default true, as the original
    /// client counts every connection); the client sends `visit=0` when it reconnects.
    pub visit: bool,
    /// `shareTabs`: the connection is shared by a browser's tabs and wants a handover token.
    pub share: bool,
    /// `handover`: the presence this connection takes over from a closing tab.
    pub handover: Option<String>,
    /// `page`: the id of the page the reader is on, when it asked to be counted on it.
    pub page: Option<String>,
}

/// Checks the query of a WebSocket upgrade (`siteId`, `clientId`, `enableTotalCount`,
/// `visit`). Used before the handoff, so a bad request is refused before Fanout, the store or
/// a channel is involved, and again at OPEN.
pub fn connect_params(query: Option<&str>) -> Result<ConnectParams, HttpError> {
    let site = SiteId::from_query(query_value(query, "siteId").as_deref())?;
    let client_id_len = query_value(query, "clientId").map_or(0, |c| c.len());
    if client_id_len > MAX_CLIENT_ID_LEN {
        return Err(HttpError::BadRequest(format!(
            "clientId has {client_id_len} bytes; at most {MAX_CLIENT_ID_LEN} are allowed"
        )));
    }
    let handover = query_value(query, handover::HANDOVER_PARAM);
    if handover
        .as_deref()
        .is_some_and(|h| !presence::is_presence_id(h))
    {
        return Err(HttpError::BadRequest(
            "handover must be a token this service gave (32 hex digits)".into(),
        ));
    }
    let page = query_value(query, PAGE_PARAM)
        .map(|p| page::id(&site, &p))
        .transpose()?;
    Ok(ConnectParams {
        page,
        site,
        totals: bool_param(query, "enableTotalCount", false)?,
        visit: bool_param(query, "visit", true)?,
        share: bool_param(query, handover::SHARE_PARAM, false)?,
        handover,
    })
}

/// How long a socket's ticket lives without a heartbeat: twice its presence, so only a
/// socket that vanished lets it lapse.
pub fn socket_ticket_ttl_ms(services: &Services) -> u64 {
    u64::from(services.config.presence_ttl_secs) * 2000
}

/// Refuses a site the registry (config `sites`) does not list; without a registry every
/// valid site id is served, as the original does.
pub fn check_site(settings: &dyn ConfigSource, site: &SiteId) -> Result<(), HttpError> {
    if config::site_is_known(settings, site) {
        Ok(())
    } else {
        Err(HttpError::UnknownSite)
    }
}

/// Refuses a page origin that the site's allow-list (config `origins.<siteId>`) does not name.
/// Sites without a list take every origin, as the original does.
pub fn check_origin(
    settings: &dyn ConfigSource,
    site: &SiteId,
    origin: Option<&str>,
) -> Result<(), HttpError> {
    let Some(allowed) = config::allowed_origins(settings, site) else {
        return Ok(());
    };
    let origin = origin.map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase());
    match origin {
        Some(o) if allowed.contains(&o) => Ok(()),
        Some(o) => Err(HttpError::Forbidden(format!(
            "origin {o} may not connect to site {site}"
        ))),
        None => Err(HttpError::Forbidden(format!(
            "site {site} only takes connections from its own pages (no Origin header)"
        ))),
    }
}

fn bool_param(query: Option<&str>, name: &str, default: bool) -> Result<bool, HttpError> {
    match query_value(query, name) {
        None => Ok(default),
        Some(raw) => parse_bool(&raw)
            .ok_or_else(|| HttpError::BadRequest(format!("{name} must be true, false, 1 or 0"))),
    }
}

/// The state of one connection while a request's events are applied.
struct Connection {
    id: String,
    site: SiteId,
    /// Whether this connection shows total visits.
    totals: bool,
    /// The upgrade's query, read at OPEN.
    params: Option<ConnectParams>,
    /// The page's `Origin`, as the browser sent it with the upgrade.
    origin: Option<String>,
    lease: Option<Lease>,
    lease_changed: bool,
    wants_broadcast: bool,
    heartbeat_seen: bool,
    /// Its first `join` was handled (earlier, or in this request).
    joined: bool,
    /// Its OPEN counted a visit; it is shared by a browser's tabs.
    visited: bool,
    shared: bool,
    took_over: bool,
    /// Visits it relayed for other tabs, and whether that changed in this request.
    relayed_visits: u32,
    relayed_changed: bool,
    /// Its client's key and socket ticket, when it came through this service's handoff.
    client: Option<ClientKey>,
    ticket: Option<u32>,
    /// That happened in this request (meta to set).
    joined_now: bool,
    /// Its ticket was given back in this request (meta to clear, so no later request of
    /// this connection gives it back again or keeps it).
    ticket_released: bool,
    /// A crawler or automated browser, marked so at the handoff (OPEN only).
    uncounted: bool,
    /// Page moves it made, and whether that changed in this request.
    page_moves: u32,
    page_moves_changed: bool,
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
    let mut conn = open_connection(req, &events, connection_id)?;
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
    match open_connection(req, &[], id.clone()) {
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

/// Refuses a request that Fanout did not sign (403).
pub fn check_signature(req: &Request<Vec<u8>>, services: &Services) -> Result<(), HttpError> {
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
    let (site, totals, params) = match meta(req, META_SITE) {
        Some(site) => (
            SiteId::parse(site)?,
            meta(req, META_TOTALS) == Some("1"),
            None,
        ),
        None if events.first() == Some(&Event::Open) => {
            let params = connect_params(req.uri().query())?;
            (params.site.clone(), params.totals, Some(params))
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
                .ok_or_else(|| HttpError::BadRequest("malformed presence meta".into()))?
                .on_page(meta(req, META_PAGE).map(str::to_string)),
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
        page_moves: meta(req, META_PAGE_MOVES)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        page_moves_changed: false,
        joined_now: false,
        heartbeat_seen: false,
        closed: false,
    })
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
            if *code == Some(handover::CLOSE_CODE) {
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

fn on_open(services: &Services, conn: &mut Connection, reply: &mut Reply) -> Result<(), HttpError> {
    // Fanout sends OPEN once per connection; a repeat would leak a presence key.
    if conn.lease.is_some() {
        return Err(HttpError::BadRequest("connection is already open".into()));
    }
    check_site(services.settings, &conn.site)?;
    check_origin(services.settings, &conn.site, conn.origin.as_deref())?;
    // A tab taking a closing tab's place keeps its presence: one reader, never a dip.
    let taken_over = conn.params.as_ref().and_then(|p| p.handover.clone());
    conn.took_over = taken_over.is_some();
    let id = taken_over.unwrap_or_else(|| presence::new_id_from(services.ids.random_u64s()));
    let page = conn.params.as_ref().and_then(|p| p.page.clone());
    let lease = if conn.uncounted {
        // In no count: a lease without keys, like one that left.
        Ok(Lease {
            id,
            expiries_ms: Vec::new(),
            page,
        })
    } else {
        presence::join_on(
            services.kv,
            services.config,
            &conn.site,
            id,
            page,
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
    conn.lease = Some(lease);
    conn.lease_changed = true;
    conn.wants_broadcast = !conn.uncounted;
    let visited = !conn.uncounted
        && conn.params.as_ref().is_some_and(|p| p.totals && p.visit)
        && count_visit(services, &conn.id, &conn.site, conn.client.as_ref());
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
fn greet(services: &Services, conn: &Connection, reply: &mut Reply) {
    if let Some(update) = first_update(services, conn, false) {
        reply.events.push(Event::Text(update));
    }
    if let (true, Some(lease)) = (conn.shared, &conn.lease) {
        reply
            .events
            .push(Event::Text(protocol::handover(&lease.id)));
    }
}

/// Counts a page view another tab relayed, within the connection's and the client's shares.
fn relayed_visit(services: &Services, conn: &mut Connection) {
    let open = conn
        .lease
        .as_ref()
        .is_some_and(|l| !l.expiries_ms.is_empty());
    if !open || !conn.totals || conn.relayed_visits >= handover::MAX_RELAYED_VISITS {
        return;
    }
    conn.relayed_visits += 1;
    conn.relayed_changed = true;
    if count_visit(services, &conn.id, &conn.site, conn.client.as_ref()) {
        conn.wants_broadcast = true;
    }
}

/// A holding tab closes and hands its presence to the tab that takes over: the presence stays
/// (it expires with its TTL if no tab does), the ticket is given back, nothing is broadcast.
fn hand_over(services: &Services, conn: &mut Connection) {
    release_ticket(services, conn);
    if let Some(lease) = conn.lease.take() {
        conn.lease = Some(Lease {
            expiries_ms: Vec::new(),
            ..lease
        });
        conn.lease_changed = true;
    }
}

/// The page's first count, so it shows a number at once instead of waiting for the next
/// slot's broadcast: the last broadcast's count (read from the POP's one-second snapshot
/// cache: no listing) plus this page if that broadcast counted before the page's presence
/// was written, and likewise the total plus this visit, and the count of its page. On a
/// settled site that is the exact count; on a changing one, the broadcast this join claims
/// corrects it within a slot. After a move to another page (`moved`) the reader was counted
/// on the site already, only not on its new page.
fn first_update(services: &Services, conn: &Connection, moved: bool) -> Option<String> {
    let reader = Reader {
        site: &conn.site,
        lease: conn.lease.as_ref()?,
        totals: conn.totals,
        visited: conn.visited,
        took_over: conn.took_over,
    };
    first_count(services, &reader, moved)
}

/// A reader whose first count is asked for (a socket's, or an SSE stream's).
pub struct Reader<'a> {
    pub site: &'a SiteId,
    pub lease: &'a Lease,
    /// It shows totals; its opening counted a visit; it took a closing tab's presence over.
    pub totals: bool,
    pub visited: bool,
    pub took_over: bool,
}

/// What [`first_update`] says, for any reader.
pub fn first_count(services: &Services, reader: &Reader, moved: bool) -> Option<String> {
    let (lease, site) = (reader.lease, reader.site);
    let ttl_ms = u64::from(services.config.presence_ttl_secs) * 1000;
    // None for a connection in no count (an automated one): nothing of it is unseen.
    let written_ms = lease
        .expiries_ms
        .iter()
        .min()
        .map(|e| e.saturating_sub(ttl_ms));
    let now = services.clock.now_ms();
    let snapshot = snapshot::cached(services, site)
        .map(|found| found.filter(|s| !s.outlived(now, services.config)));
    let (count, total, page_count) = match snapshot {
        // Someone left since: the snapshot is too high, and the broadcast is under a second
        // away (a page reloaded would otherwise see itself counted twice, then once).
        Ok(Some(last)) if snapshot::counts_a_leaver(services.cache, site, &last) => return None,
        Ok(Some(last)) => {
            // A presence taken over from a closing tab was counted already.
            let unseen =
                u64::from(written_ms.is_some_and(|w| w > last.slot_end_ms) && !reader.took_over);
            let unseen_on_site = if moved { 0 } else { unseen };
            let total = (reader.totals && !moved)
                .then_some(last.total)
                .flatten()
                .map(|t| t + unseen * u64::from(reader.visited));
            let page_count = lease
                .page
                .as_deref()
                .map(|p| last.page_count(p).map(|n| n + unseen));
            (last.count + unseen_on_site, total, page_count)
        }
        // No broadcast yet (a new site), or only one from before everyone it counted left
        // without a word: this page is the first.
        Ok(None) => {
            let n = u64::from(written_ms.is_some());
            (n, None, lease.page.as_ref().map(|_| Some(n)))
        }
        // The broadcast will tell it.
        Err(_) => return None,
    };
    let floor = Floor::of(services.settings, site);
    Some(match page_count {
        Some(page_count) => {
            protocol::page_update(floor.show(count), total, page_count.map(|n| floor.show(n)))
        }
        None => protocol::update(floor.show(count), total),
    })
}

/// Moves the reader to another page (or off pages, `None`): its presence key names the new
/// page (one write; the old keys are deleted), its subscriptions follow, and the reply tells
/// it the new page's count. A connection moves at most `page::MAX_MOVES` times.
fn move_page(
    services: &Services,
    conn: &mut Connection,
    page: Option<String>,
    reply: &mut Reply,
) -> Result<(), HttpError> {
    let page = page.map(|p| page::id(&conn.site, &p)).transpose()?;
    let Some(lease) = conn.lease.as_ref().filter(|l| !l.expiries_ms.is_empty()) else {
        return Ok(());
    };
    if lease.page == page {
        return Ok(());
    }
    // Each move is a write (of a new key: no key's write rate is at stake): a connection has
    // a budget of them.
    if conn.page_moves >= page::MAX_MOVES {
        services.log.emit(&Line::PageMoveLimited {
            conn: &conn.id,
            site: &conn.site,
        });
        return Ok(());
    }
    conn.page_moves += 1;
    conn.page_moves_changed = true;
    let now = services.clock.now_ms();
    let old_page = lease.page.clone();
    match presence::move_to(services.kv, services.config, &conn.site, lease, page, now) {
        Ok(moved) => {
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
            return Ok(());
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
    Ok(())
}

/// Adds a page view to the site's total, within the client's hourly share of visits (whether
/// it was added): a socket's or stream's opening, or a visit relayed for another tab. A refusal
/// or failure is logged, never fatal to the connection.
pub fn count_visit(
    services: &Services,
    conn: &str,
    site: &SiteId,
    client: Option<&ClientKey>,
) -> bool {
    let verdict = client.map(|client| {
        limits::take_visit(
            services.cache,
            &services.config.limits,
            site,
            client,
            services.clock.now_ms(),
        )
    });
    match verdict {
        Some(Verdict::Over) => {
            services.log.emit(&Line::VisitLimited { conn, site });
            return false;
        }
        Some(Verdict::Unchecked) => services.log.emit(&Line::LimitUnchecked { limit: "visits" }),
        None | Some(Verdict::Within) => {}
    }
    match totals::record_visit(services.kv, services.ids, services.clock, site) {
        Ok(attempts) => {
            if attempts > 1 {
                services.log.emit(&Line::VisitRetried {
                    conn,
                    site,
                    attempts,
                });
            }
            true
        }
        Err(e) => {
            services.log.emit(&Line::VisitFailed {
                conn,
                site,
                error: &e.to_string(),
            });
            false
        }
    }
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
            if let Err(e) = move_page(services, conn, page, reply) {
                close(
                    services,
                    conn,
                    reply,
                    CloseCode::InvalidPayload,
                    &e.to_string(),
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
    // A connection that left keeps nothing alive, its ticket included.
    if lease.expiries_ms.is_empty() {
        return;
    }
    if let (Some(client), Some(ticket)) = (&conn.client, conn.ticket) {
        let ttl = socket_ticket_ttl_ms(services);
        limits::keep_socket(services.cache, &conn.site, client, ticket, ttl);
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

/// Gives the client's socket ticket back, once.
fn release_ticket(services: &Services, conn: &mut Connection) {
    if let (Some(client), Some(ticket)) = (&conn.client, conn.ticket.take()) {
        limits::release_socket(services.cache, &conn.site, client, ticket);
        conn.ticket_released = true;
    }
}

/// Removes the connection's presence at once.
fn leave(services: &Services, conn: &mut Connection) {
    release_ticket(services, conn);
    let Some(lease) = conn.lease.take() else {
        return;
    };
    if lease.expiries_ms.is_empty() {
        return;
    }
    if let Err(e) = presence::leave(services.kv, services.clock, &conn.site, &lease) {
        // Whatever was not deleted expires by itself within the TTL (and a sweep deletes it).
        services.log.emit(&Line::PresenceLeaveFailed {
            conn: &conn.id,
            site: &conn.site,
            error: &e.to_string(),
        });
    }
    snapshot::note_leave(services.cache, &conn.site, services.clock.now_ms());
    conn.lease = Some(Lease {
        expiries_ms: Vec::new(),
        ..lease
    });
    conn.lease_changed = true;
    conn.wants_broadcast = true;
}

/// Closes the connection from our side, with a code and a log line.
fn close(
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

fn log_fields(conn: &Connection, events: &[Event]) -> String {
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    format!(
        "conn={} site={} events={}",
        conn.id,
        conn.site,
        names.join(",")
    )
}

fn encode_reply(conn: &Connection, reply: Reply, keep_alive_secs: u32) -> Response<Vec<u8>> {
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
                .header(set_meta(META_PRESENCE_EXP), lease.expiries_meta())
                .header(set_meta(META_PAGE), lease.page.as_deref().unwrap_or(""));
        }
    }
    finish(builder, websocket_events::encode(&reply.events))
}

fn set_meta(name: &str) -> String {
    format!("{}{}", grip::SET_META_PREFIX, name)
}

// The tests mint Grip-Sig tokens with the testkit (native only).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::testing::{TestServices, TEST_GRIP_KEY};
    use liveuser_testkit::jwt::hs256_token;

    const NOW_MS: u64 = 1_800_000_000_000;

    fn services() -> TestServices {
        let t = TestServices::new();
        t.set_time(NOW_MS);
        t
    }

    /// A WebSocket-over-HTTP request as Pushpin sends it, signed with the test key.
    fn call(query: &str, meta: &[(&str, &str)], body: &[u8]) -> Request<Vec<u8>> {
        let token = hs256_token(TEST_GRIP_KEY, "pushpin", NOW_MS / 1000 + 3600);
        let mut builder = Request::builder()
            .method("POST")
            .uri(format!("/ws{query}"))
            .header("Content-Type", websocket_events::CONTENT_TYPE)
            .header("Connection-Id", "conn-1")
            .header("Grip-Sig", token);
        for (name, value) in meta {
            builder = builder.header(format!("Meta-{name}"), *value);
        }
        builder.body(body.to_vec()).expect("request")
    }

    fn events(handled: &Handled) -> Vec<Event> {
        websocket_events::parse(handled.response.body()).expect("reply parses")
    }

    fn set_meta(handled: &Handled, name: &str) -> Option<String> {
        handled
            .response
            .headers()
            .get(format!("Set-Meta-{name}"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Opens a connection and returns the meta Fanout would send back on later requests.
    fn open(t: &TestServices, site: &str) -> Vec<(&'static str, String)> {
        let handled = handle(
            &call(&format!("?siteId={site}"), &[], b"OPEN\r\n"),
            &t.services(),
        )
        .expect("open");
        vec![
            ("Site", set_meta(&handled, "Site").expect("site meta")),
            (
                "Presence-Id",
                set_meta(&handled, "Presence-Id").expect("id meta"),
            ),
            (
                "Presence-Exp",
                set_meta(&handled, "Presence-Exp").expect("exp meta"),
            ),
        ]
    }

    fn with_meta<'a>(meta: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
        meta.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn open_accepts_subscribes_binds_the_site_and_writes_one_key() {
        let t = services();
        let handled = handle(
            &call("?siteId=shop&clientId=abc", &[], b"OPEN\r\n"),
            &t.services(),
        )
        .expect("open");
        let resp = &handled.response;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "application/websocket-events"
        );
        assert_eq!(
            resp.headers()["sec-websocket-extensions"],
            "grip; message-prefix=\"\""
        );
        assert_eq!(set_meta(&handled, "Site").as_deref(), Some("shop"));
        assert_eq!(
            events(&handled),
            vec![
                Event::Open,
                Event::Text(r#"c:{"type":"subscribe","channel":"site:shop"}"#.into()),
            ]
        );
        assert_eq!(t.kv.len(), 1);
        assert!(t.kv.keys()[0].starts_with("site/shop/p/"));
        assert!(
            handled.broadcast.is_some(),
            "the first change of a slot wins its broadcast"
        );
    }

    #[test]
    fn a_forged_or_missing_signature_is_403_and_touches_nothing() {
        let t = services();
        let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
        req.headers_mut().remove("Grip-Sig");
        assert!(matches!(
            handle(&req, &t.services()),
            Err(HttpError::Forbidden(_))
        ));
        let forged = hs256_token(b"wrong", "pushpin", NOW_MS / 1000 + 3600);
        req.headers_mut()
            .insert("Grip-Sig", forged.parse().expect("header"));
        let err = handle(&req, &t.services()).expect_err("refused");
        assert_eq!(err.status(), 403);
        assert_eq!(t.kv.len(), 0);
    }

    #[test]
    fn a_bad_site_is_400_before_any_write() {
        let t = services();
        for query in ["?siteId=a%20b", "?siteId=", "?siteId=%2e%2e"] {
            let err = handle(&call(query, &[], b"OPEN\r\n"), &t.services()).expect_err("refused");
            assert_eq!(err.status(), 400, "{query}");
        }
        assert_eq!(t.kv.len(), 0);
        assert!(t.publisher.published.borrow().is_empty());
    }

    #[test]
    fn the_site_comes_from_meta_not_from_what_the_client_says() {
        let t = services();
        let meta = open(&t, "shop");
        let join = br#"{"type":"join","siteId":"other","clientId":"c"}"#;
        let body = websocket_events::encode(&[Event::Text(String::from_utf8_lossy(join).into())]);
        // Even a query naming another site changes nothing once the meta is set.
        let handled = handle(
            &call("?siteId=other", &with_meta(&meta), &body),
            &t.services(),
        )
        .expect("join");
        // Its reply is shop's count (a new site: this page).
        assert_eq!(
            events(&handled),
            vec![Event::Text(r#"{"type":"update","count":1}"#.into())]
        );
        assert!(t.kv.keys().iter().all(|k| k.starts_with("site/shop/p/")));
        if let Some(plan) = handled.broadcast {
            assert_eq!(plan.site.as_str(), "shop");
        }
    }

    #[test]
    fn heartbeat_is_answered_with_the_time_and_writes_at_most_once() {
        let t = services();
        let meta = open(&t, "shop");
        let beat = websocket_events::encode(&[Event::Text(
            r#"{"type":"heartbeat","siteId":"shop","clientId":"c","timestamp":1}"#.into(),
        )]);
        // Right after open: the key is fresh, nothing is written.
        let handled = handle(&call("", &with_meta(&meta), &beat), &t.services()).expect("beat");
        assert_eq!(
            events(&handled),
            vec![Event::Text(format!(
                r#"{{"type":"heartbeat","timestamp":{}}}"#,
                NOW_MS / 1000
            ))]
        );
        assert_eq!(t.kv.len(), 1);
        // An interval later: exactly one new key, and the lease in meta names both.
        t.set_time(NOW_MS + 30_000);
        let handled = handle(&call("", &with_meta(&meta), &beat), &t.services()).expect("beat");
        assert_eq!(t.kv.len(), 2);
        let exp = set_meta(&handled, "Presence-Exp").expect("lease updated");
        assert_eq!(exp.split(',').count(), 2);
    }

    #[test]
    fn close_and_disconnect_delete_the_presence_at_once() {
        for (body, reply) in [
            (
                &b"CLOSE 2\r\n\x03\xe8\r\n"[..],
                vec![Event::close(1000, "")],
            ),
            (b"DISCONNECT\r\n", vec![]),
        ] {
            let t = services();
            let meta = open(&t, "shop");
            let other = open(&t, "shop");
            assert_eq!(t.kv.len(), 2);
            let handled = handle(&call("", &with_meta(&meta), body), &t.services()).expect("close");
            assert_eq!(events(&handled), reply);
            assert_eq!(t.kv.len(), 1);
            assert_eq!(set_meta(&handled, "Presence-Exp").as_deref(), Some(""));
            drop(other);
        }
    }

    #[test]
    fn bad_messages_close_with_their_code_and_remove_presence() {
        let cases: [(Event, u16); 3] = [
            (Event::Text("{oops".into()), 1007),
            (
                Event::Text(format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000))),
                1009,
            ),
            (Event::Binary(vec![1]), 1003),
        ];
        for (event, code) in cases {
            let t = services();
            let meta = open(&t, "shop");
            let body =
                websocket_events::encode(&[event, Event::Text(r#"{"type":"heartbeat"}"#.into())]);
            let handled =
                handle(&call("", &with_meta(&meta), &body), &t.services()).expect("handled");
            let replies = events(&handled);
            assert_eq!(replies.len(), 1, "nothing after the close: {replies:?}");
            assert!(matches!(replies[0], Event::Close { code: Some(c), .. } if c == code));
            assert_eq!(t.kv.len(), 0);
        }
    }

    #[test]
    fn unknown_messages_and_pings_are_harmless() {
        let t = services();
        let meta = open(&t, "shop");
        let body = websocket_events::encode(&[
            Event::Text(r#"{"type":"future-thing"}"#.into()),
            Event::Ping(b"p".to_vec()),
        ]);
        let handled = handle(&call("", &with_meta(&meta), &body), &t.services()).expect("handled");
        assert_eq!(events(&handled), vec![Event::Pong(b"p".to_vec())]);
        assert_eq!(t.kv.len(), 1);
    }

    #[test]
    fn events_without_open_or_meta_are_refused() {
        let t = services();
        let err = handle(&call("?siteId=shop", &[], b"DISCONNECT\r\n"), &t.services()).err();
        assert_eq!(err.map(|e| e.status()), Some(400));
        let err = handle(
            &call(
                "",
                &[("Site", "shop"), ("Presence-Id", "../../x")],
                b"DISCONNECT\r\n",
            ),
            &t.services(),
        )
        .err();
        assert_eq!(err.map(|e| e.status()), Some(400));
    }

    #[test]
    fn an_allow_list_refuses_other_origins_at_open() {
        let mut t = services();
        t.settings
            .insert("origins.shop".into(), "https://shop.example".into());
        let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
        let err = handle(&req, &t.services()).expect_err("no origin");
        assert_eq!(err.status(), 403);
        req.headers_mut()
            .insert("origin", "https://evil.example".parse().expect("header"));
        let err = handle(&req, &t.services()).expect_err("foreign origin");
        assert_eq!(err.status(), 403);
        assert_eq!(t.kv.len(), 0);
        req.headers_mut()
            .insert("origin", "https://SHOP.example".parse().expect("header"));
        assert!(handle(&req, &t.services()).is_ok());
        // Sites without a list stay open to all.
        assert!(handle(&call("?siteId=other", &[], b"OPEN\r\n"), &t.services()).is_ok());
    }

    #[test]
    fn connect_params_check_site_and_client_id() {
        assert_eq!(
            connect_params(None).map(|p| p.site.to_string()),
            Ok("default-site".into())
        );
        assert_eq!(
            connect_params(Some("siteId=a&clientId=x")).map(|p| p.site.to_string()),
            Ok("a".into())
        );
        assert!(connect_params(Some(&format!("clientId={}", "x".repeat(129)))).is_err());
        assert!(connect_params(Some("siteId=%3Cscript%3E")).is_err());
    }

    /// Opens a connection with `query`, then sends its join: the join's reply.
    fn open_and_join(t: &TestServices, services: &Services, query: &str) -> Handled {
        let opened = handle(&call(query, &[], b"OPEN\r\n"), services).expect("open");
        let join = websocket_events::encode(&[Event::Text(r#"{"type":"join"}"#.into())]);
        let _ = t;
        handle(&call("", &with_meta(&meta_of(&opened)), &join), services).expect("join")
    }

    #[test]
    fn the_join_reply_carries_the_count_with_this_page_and_the_total_with_this_visit() {
        let t = services();
        // A settled site: its last broadcast, a minute ago, said 5 readers and 10 visits.
        let last = snapshot::Snapshot {
            slot_end_ms: NOW_MS - 60_000,
            count: 5,
            total: Some(10),
            pages: Vec::new(),
            peak: None,
        };
        let shop = SiteId::parse("shop").expect("site");
        snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
        let kv = crate::kv::CountingKv::new(&t.kv);
        let counted = Services {
            kv: &kv,
            ..t.services()
        };
        let first = |query: &str| events(&open_and_join(&t, &counted, query)).last().cloned();
        let update = |json: &str| Some(Event::Text(json.into()));
        assert_eq!(
            first("?siteId=shop&enableTotalCount=true"),
            update(r#"{"type":"update","count":6,"totalCount":11}"#)
        );
        // A page that is not a new visit adds none; a count-only page is told no total.
        assert_eq!(
            first("?siteId=shop&enableTotalCount=true&visit=0"),
            update(r#"{"type":"update","count":6,"totalCount":10}"#)
        );
        assert_eq!(
            first("?siteId=shop"),
            update(r#"{"type":"update","count":6}"#)
        );
        // No listing: the snapshot's two keys read once, then from the POP's cache.
        let counts = kv.counts();
        assert_eq!((counts.list, counts.lookup), (0, 2));
        // Once a reader has left, the snapshot counts one too many until the next broadcast:
        // a new page waits for that broadcast rather than be told a number that will drop.
        let meta = open(&t, "shop");
        let bye = websocket_events::encode(&[Event::close(1000, "")]);
        handle(&call("", &with_meta(&meta), &bye), &counted).expect("close");
        assert_eq!(first("?siteId=shop"), None);
    }

    #[test]
    fn a_page_reader_is_counted_on_its_page_in_one_write_and_moves_with_the_app() {
        let t = services();
        let shop = SiteId::parse("shop").expect("site");
        let (docs, blog) = (
            page::id(&shop, "/docs").expect("id"),
            page::id(&shop, "/blog").expect("id"),
        );
        let last = snapshot::Snapshot {
            slot_end_ms: NOW_MS - 60_000,
            count: 5,
            total: None,
            pages: vec![(docs.clone(), 2)],
            peak: None,
        };
        snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
        let kv = crate::kv::CountingKv::new(&t.kv);
        let counted = Services {
            kv: &kv,
            ..t.services()
        };
        let opened =
            handle(&call("?siteId=shop&page=/docs", &[], b"OPEN\r\n"), &counted).expect("open");
        assert_eq!(
            events(&opened)[1..],
            [
                grip::subscribe("site:shop"),
                grip::subscribe(&format!("page:shop:{docs}")),
            ]
        );
        assert_eq!(set_meta(&opened, META_PAGE), Some(docs.clone()));
        assert_eq!(kv.counts().insert, 1, "the page rides the presence key");
        // The page itself is stored nowhere: only its id.
        assert!(t.kv.keys().iter().all(|k| !k.contains("docs")));
        let mut meta = meta_of(&opened);
        let say = |meta: &[(&'static str, String)], text: &str| {
            let body = websocket_events::encode(&[Event::Text(text.into())]);
            handle(&call("", &with_meta(meta), &body), &t.services()).expect("reply")
        };
        let joined = say(&meta, r#"{"type":"join"}"#);
        assert_eq!(
            events(&joined).last(),
            Some(&Event::Text(
                r#"{"type":"update","count":6,"pageCount":3}"#.into()
            ))
        );
        // A move (even right after the join's write: the new key has its own name) writes
        // one key, deletes the old one, the subscriptions follow, and the reply has the new
        // page's count (the site count is the snapshot's: the reader was counted already).
        t.set_time(NOW_MS + 2_000);
        let moved = say(&meta, r#"{"type":"page","page":"/blog"}"#);
        assert_eq!(
            events(&moved),
            vec![
                grip::unsubscribe(&format!("page:shop:{docs}")),
                grip::subscribe(&format!("page:shop:{blog}")),
                Event::Text(r#"{"type":"update","count":5,"pageCount":1}"#.into()),
            ]
        );
        assert!(moved.broadcast.is_some(), "a move claims a broadcast");
        let census = presence::census(&t.kv, &t.config, &shop, NOW_MS + 2_000).expect("census");
        assert_eq!((census.live, census.pages.get(&blog)), (1, Some(&1)));
        assert_eq!(census.pages.get(&docs), None);
        meta.retain(|(n, _)| ![META_PRESENCE_EXP, META_PAGE].contains(n));
        meta.extend(meta_of(&moved));
        // Off pages: unsubscribed, still counted on the site.
        t.set_time(NOW_MS + 4_000);
        let off = say(&meta, r#"{"type":"page","page":null}"#);
        assert_eq!(
            events(&off),
            vec![grip::unsubscribe(&format!("page:shop:{blog}"))]
        );
        assert_eq!(set_meta(&off, META_PAGE).as_deref(), Some(""));
        let census = presence::census(&t.kv, &t.config, &shop, NOW_MS + 4_000).expect("census");
        assert_eq!((census.live, census.pages.len()), (1, 0));
        // A connection has a budget of moves.
        let mut spent = meta.clone();
        spent.push((META_PAGE_MOVES, page::MAX_MOVES.to_string()));
        let refused = say(&spent, r#"{"type":"page","page":"/docs"}"#);
        assert!(events(&refused).is_empty());
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l.contains("page-move-limited")));
        assert_eq!(
            set_meta(&moved, META_PAGE_MOVES).as_deref(),
            Some("1"),
            "moves are counted in meta"
        );
        // A page name that is not one closes with 1007; so does a page that is not a string.
        for bad in [
            r#"{"type":"page","page":"a b"}"#,
            r#"{"type":"page","page":5}"#,
        ] {
            let refused = say(&meta, bad);
            assert!(
                matches!(
                    events(&refused).last(),
                    Some(Event::Close {
                        code: Some(1007),
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_parameter_that_is_not_a_page_refuses_the_upgrade() {
        let t = services();
        for query in [
            "?siteId=shop&page=",
            "?siteId=shop&page=a%20b",
            "?siteId=shop&page=%C3%A9",
        ] {
            let err = handle(&call(query, &[], b"OPEN\r\n"), &t.services()).expect_err(query);
            assert_eq!(err.status(), 400, "{query}");
        }
        assert_eq!(t.kv.len(), 0);
    }

    fn live(t: &TestServices, site: &str, at_ms: u64) -> u64 {
        let site = SiteId::parse(site).expect("site");
        presence::count(&t.kv, &t.config, &site, at_ms).expect("count")
    }

    fn meta_of(handled: &Handled) -> Vec<(&'static str, String)> {
        [
            META_SITE,
            META_PRESENCE_ID,
            META_PRESENCE_EXP,
            META_TOTALS,
            META_VISITED,
            META_SHARED,
            META_TOOK_OVER,
            META_JOINED,
            META_RELAYED_VISITS,
            META_PAGE,
        ]
        .into_iter()
        .filter_map(|n| set_meta(handled, n).map(|v| (n, v)))
        .collect()
    }

    #[test]
    fn a_closing_tab_hands_its_presence_to_the_tab_that_takes_over() {
        let t = services();
        let opened = handle(
            &call("?siteId=shop&shareTabs=1", &[], b"OPEN\r\n"),
            &t.services(),
        )
        .expect("open");
        let join = websocket_events::encode(&[Event::Text(r#"{"type":"join"}"#.into())]);
        let joined = handle(
            &call("", &with_meta(&meta_of(&opened)), &join),
            &t.services(),
        )
        .expect("join");
        let token = events(&joined)
            .iter()
            .find_map(|e| match e {
                Event::Text(text) => serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .filter(|m| m["type"] == "handover")
                    .and_then(|m| m["token"].as_str().map(str::to_string)),
                _ => None,
            })
            .expect("a handover token");
        // It closes, handing over: its presence stays and nothing is broadcast.
        let bye = websocket_events::encode(&[Event::close(handover::CLOSE_CODE, "")]);
        let closed = handle(
            &call("", &with_meta(&meta_of(&opened)), &bye),
            &t.services(),
        )
        .expect("close");
        assert!(closed.broadcast.is_none());
        assert_eq!(live(&t, "shop", NOW_MS + 1_000), 1);
        // The next tab takes it over: still one reader, before and after the old key expires.
        t.set_time(NOW_MS + 2_000);
        let query = format!("?siteId=shop&shareTabs=1&visit=0&handover={token}");
        let next = handle(&call(&query, &[], b"OPEN\r\n"), &t.services()).expect("open");
        assert_eq!(
            set_meta(&next, "Presence-Id").as_deref(),
            Some(token.as_str())
        );
        assert_eq!(live(&t, "shop", NOW_MS + 3_000), 1);
        assert_eq!(live(&t, "shop", NOW_MS + 46_500), 1);
        // A presence nobody takes over expires with its TTL.
        let alone = handle(
            &call("?siteId=alone&shareTabs=1", &[], b"OPEN\r\n"),
            &t.services(),
        )
        .expect("open");
        handle(&call("", &with_meta(&meta_of(&alone)), &bye), &t.services()).expect("close");
        assert_eq!(live(&t, "alone", NOW_MS + 3_000), 1);
        assert_eq!(live(&t, "alone", NOW_MS + 60_000), 0);
        // A token this service could not have made is refused.
        let err = handle(
            &call("?siteId=shop&handover=nope", &[], b"OPEN\r\n"),
            &t.services(),
        )
        .expect_err("bad token");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn the_holding_tab_relays_other_tabs_visits_up_to_its_share() {
        let t = services();
        let opened = handle(
            &call(
                "?siteId=shop&enableTotalCount=true&shareTabs=1",
                &[],
                b"OPEN\r\n",
            ),
            &t.services(),
        )
        .expect("open");
        let mut meta = meta_of(&opened);
        let visit = websocket_events::encode(&[Event::Text(r#"{"type":"visit"}"#.into())]);
        let site = SiteId::parse("shop").expect("site");
        let total = || {
            totals::settle(&t.kv, &site, t.clock.now.get() + 10_000, false)
                .expect("total")
                .total
        };
        assert_eq!(total(), 1);
        for _ in 0..handover::MAX_RELAYED_VISITS + 5 {
            let relayed =
                handle(&call("", &with_meta(&meta), &visit), &t.services()).expect("visit");
            if let Some(n) = set_meta(&relayed, META_RELAYED_VISITS) {
                meta.retain(|(k, _)| *k != META_RELAYED_VISITS);
                meta.push((META_RELAYED_VISITS, n));
            }
        }
        assert_eq!(total(), 1 + u64::from(handover::MAX_RELAYED_VISITS));
        // A count-only connection relays nothing.
        let plain = handle(&call("?siteId=plain", &[], b"OPEN\r\n"), &t.services()).expect("open");
        handle(
            &call("", &with_meta(&meta_of(&plain)), &visit),
            &t.services(),
        )
        .expect("visit");
        let plain_site = SiteId::parse("plain").expect("site");
        let plain_total = totals::settle(&t.kv, &plain_site, NOW_MS + 10_000, false)
            .expect("total")
            .total;
        assert_eq!(plain_total, 0);
    }

    #[test]
    fn a_batch_over_the_size_limit_closes_its_connection_with_1009_in_a_200() {
        let t = services();
        let meta = open(&t, "shop");
        assert_eq!(t.kv.len(), 1);
        let huge = vec![b'x'; websocket_events::MAX_BODY_BYTES + 1];
        let handled = handle(&call("", &with_meta(&meta), &huge), &t.services()).expect("200");
        assert_eq!(handled.response.status(), 200);
        assert!(matches!(
            events(&handled)[..],
            [Event::Close {
                code: Some(1009),
                ..
            }]
        ));
        assert_eq!(t.kv.len(), 0, "its presence is gone at once");
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l.starts_with("liveuser ws-close conn=conn-1 site=shop code=1009")));
        // Even a connection this service never opened is closed, not refused.
        let handled = handle(&call("", &[], &huge), &t.services()).expect("200");
        assert!(matches!(
            events(&handled)[..],
            [Event::Close {
                code: Some(1009),
                ..
            }]
        ));
        // A forged one is still refused first.
        let mut forged = call("", &with_meta(&meta), &huge);
        forged.headers_mut().remove("Grip-Sig");
        assert_eq!(
            handle(&forged, &t.services())
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(403)
        );
    }

    #[test]
    fn a_heartbeat_after_the_connection_left_writes_nothing() {
        let t = services();
        let meta = open(&t, "shop");
        let closed = handle(
            &call("", &with_meta(&meta), b"CLOSE 2\r\n\x03\xe8\r\n"),
            &t.services(),
        )
        .expect("close");
        let left = vec![
            ("Site", "shop".to_string()),
            ("Presence-Id", set_meta(&closed, "Presence-Id").expect("id")),
            (
                "Presence-Exp",
                set_meta(&closed, "Presence-Exp").unwrap_or_default(),
            ),
        ];
        assert_eq!(t.kv.len(), 0);
        t.set_time(NOW_MS + 60_000);
        let beat = websocket_events::encode(&[Event::Text(r#"{"type":"heartbeat"}"#.into())]);
        handle(&call("", &with_meta(&left), &beat), &t.services()).expect("beat");
        assert_eq!(
            t.kv.len(),
            0,
            "a late heartbeat must not bring the connection back"
        );
    }

    #[test]
    fn a_close_is_echoed_only_with_a_code_that_may_be_sent() {
        for (sent, echoed) in [
            (Some(4001), 4001),
            (Some(1005), 1000),
            (Some(1006), 1000),
            (Some(999), 1000),
            (Some(1015), 1000),
            (Some(1016), 1000),
            (Some(2000), 1000),
            (Some(1011), 1011),
            (Some(3000), 3000),
            (Some(5000), 1000),
            (None, 1000),
        ] {
            let t = services();
            let meta = open(&t, "shop");
            let body = websocket_events::encode(&[Event::Close {
                code: sent,
                reason: String::new(),
            }]);
            let handled =
                handle(&call("", &with_meta(&meta), &body), &t.services()).expect("close");
            assert_eq!(events(&handled), vec![Event::close(echoed, "")], "{sent:?}");
        }
    }

    #[test]
    fn a_header_that_is_not_utf8_is_a_400_not_a_panic() {
        let t = services();
        let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
        req.headers_mut().insert(
            "Connection-Id",
            http::HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes"),
        );
        assert_eq!(
            handle(&req, &t.services())
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(400)
        );
        let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
        req.headers_mut().insert(
            "Grip-Sig",
            http::HeaderValue::from_bytes(b"\xff").expect("opaque bytes"),
        );
        assert_eq!(
            handle(&req, &t.services())
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(403)
        );
        assert_eq!(t.kv.len(), 0);
    }

    #[test]
    fn only_the_first_join_of_a_connection_claims_a_broadcast() {
        let t = services();
        let meta = open(&t, "shop");
        let join = websocket_events::encode(&[Event::Text(r#"{"type":"join"}"#.into())]);
        t.set_time(NOW_MS + 1_000);
        let first = handle(&call("", &with_meta(&meta), &join), &t.services()).expect("join");
        assert!(first.broadcast.is_some(), "the first join claims its slot");
        let mut joined = meta.clone();
        joined.push((
            "Joined",
            set_meta(&first, "Joined").expect("meta says joined"),
        ));
        // Later joins, even in slots nobody has claimed yet, claim nothing.
        for n in 2..5 {
            t.set_time(NOW_MS + n * 1_000);
            let again = handle(&call("", &with_meta(&joined), &join), &t.services()).expect("join");
            assert!(again.broadcast.is_none(), "join {n}");
        }
    }

    #[test]
    fn with_a_registry_of_sites_an_unknown_site_is_refused_before_anything_is_stored() {
        let mut t = services();
        t.settings.insert("sites".into(), "shop, blog".into());
        let err =
            handle(&call("?siteId=other", &[], b"OPEN\r\n"), &t.services()).expect_err("unknown");
        assert_eq!((err.status(), err.code()), (404, "unknown_site"));
        assert_eq!(t.kv.len(), 0);
        assert!(handle(&call("?siteId=blog", &[], b"OPEN\r\n"), &t.services()).is_ok());
        let other = crate::serve::UpgradeRequest {
            path: "/ws",
            query: Some("siteId=other"),
            ..Default::default()
        };
        let upgrade = crate::serve::upgrade(&t.services(), &other);
        assert!(matches!(upgrade, crate::serve::Upgrade::Refuse(r) if r.status() == 404));
    }

    #[test]
    fn an_uncounted_connection_sees_the_count_and_is_not_in_it() {
        let t = services();
        let mut req = call("?siteId=shop&enableTotalCount=1", &[], b"OPEN\r\n");
        req.headers_mut()
            .insert(UNCOUNTED_HEADER, "1".parse().expect("header"));
        let opened = handle(&req, &t.services()).expect("open");
        assert_eq!(events(&opened)[1..], [grip::subscribe("site-totals:shop")]);
        assert_eq!(t.kv.len(), 0, "no presence, no visit");
        assert!(opened.broadcast.is_none());
        let meta = meta_of(&opened);
        let say = |text: &str| {
            let body = websocket_events::encode(&[Event::Text(text.into())]);
            handle(&call("", &with_meta(&meta), &body), &t.services()).expect("reply")
        };
        // Its first count leaves it out; heartbeats and its close write nothing.
        let joined = say(r#"{"type":"join"}"#);
        assert_eq!(
            events(&joined).last(),
            Some(&Event::Text(r#"{"type":"update","count":0}"#.into()))
        );
        say(r#"{"type":"heartbeat"}"#);
        let bye = websocket_events::encode(&[Event::close(1000, "")]);
        handle(&call("", &with_meta(&meta), &bye), &t.services()).expect("close");
        assert_eq!(t.kv.len(), 0);
        assert_eq!(live(&t, "shop", NOW_MS), 0);
    }

    #[test]
    fn an_error_body_names_no_store_and_no_internal_error_but_the_log_does() {
        let t = services();
        let mut s = t.services();
        s.kv = &crate::testing::Down;
        let err = handle(&call("?siteId=shop", &[], b"OPEN\r\n"), &s).expect_err("store down");
        assert_eq!(err.status(), 503);
        let body = String::from_utf8_lossy(crate::response::error(&err).body()).into_owned();
        assert!(
            !body.contains("liveuser") && !body.contains("internal error"),
            "{body}"
        );
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l.contains("presence-join-failed") && l.contains("internal error 42")));
    }
}
