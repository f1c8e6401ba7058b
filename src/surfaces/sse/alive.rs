//! Fanout's calls while it holds a stream (`GET /sse/alive/<session>`, the next link of
//! `hold`): the only thing that keeps a stream's presence. Each call is signed by Fanout, names
//! a session signed under the link key (the browser's copy is signed under another, and is no
//! link), and comes only while Fanout holds the stream; so a reader is counted for as long as
//! Fanout holds its stream, and at most a presence lifetime and a window after it closes,
//! whatever anyone sends with the session the browser has.
//!
//! A call renews the presence as a socket's heartbeat does (a KV write once a window), keeps the
//! stream's socket ticket (counted or not: a held stream always holds its share), claims the
//! site's sweep when one is due, and answers the stream's next instruction. A call that cannot
//! be honoured ends the stream with a 200 and no instruction (an error status would only make
//! Fanout try again): the browser opens a new stream, with a fresh session.

use http::Request;

use crate::count::presence;
use crate::count::{broadcast, limits, registry};
use crate::platform::cache::SharedCache;
use crate::platform::log::Line;
use crate::platform::Services;
use crate::surfaces::sse::hold;
use crate::surfaces::sse::session::{link_keys, required, Session};
use crate::surfaces::{handoff, Handled};
use crate::wire::error::HttpError;
use crate::wire::response::finish;
use crate::wire::site::SiteId;

/// How many link timeouts a leave's mark outlives: Fanout's next call after a leave (on time,
/// or retried) finds it and ends the stream.
const LEFT_MARK_TIMEOUTS: u64 = 10;

/// Answers Fanout's call for the stream whose session is `token`.
pub fn alive(
    req: &Request<Vec<u8>>,
    services: &Services,
    token: &str,
) -> Result<Handled, HttpError> {
    handoff::check_signature(req, services)?;
    let keys = required(link_keys(services))?;
    // A link this service did not give, or gave under a key no longer kept (rotated twice).
    let Ok(mut session) = Session::from_link_token(token, &keys) else {
        return Ok(end(services, None, "invalid-link"));
    };
    let site = session.site.clone();
    if has_left(services.cache, &session) {
        return Ok(end(services, Some(&site), "left"));
    }
    if registry::check_site(services, &site).is_err() {
        return Ok(end(services, Some(&site), "unknown-site"));
    }
    if let (Some(ticket), Some(client)) = (session.ticket, &session.client) {
        let ttl = limits::socket_ticket_ttl_ms(services.config);
        limits::keep_socket(services.cache, &site, client, ticket, ttl);
    }
    let counted = !session.lease.windows.is_empty();
    if counted {
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
    Ok(Handled {
        response: finish(hold::held(&session, &keys, services.config), Vec::new()),
        broadcast: counted
            .then(|| broadcast::sweep_due(services, &site))
            .flatten(),
        log_fields: format!("site={site} events=SSE-ALIVE"),
    })
}

/// Marks `session`'s stream as left (its reader's beacon): Fanout's next call for it, at this
/// POP, ends the stream rather than renew it.
pub fn mark_left(services: &Services, session: &Session) {
    let ttl_ms = u64::from(hold::link_timeout_secs(services.config)) * 1000 * LEFT_MARK_TIMEOUTS;
    services.cache.set(&left_key(session), b"1", ttl_ms);
}

fn has_left(cache: &dyn SharedCache, session: &Session) -> bool {
    cache.get(&left_key(session)).is_some()
}

fn left_key(session: &Session) -> String {
    format!("sse-left/{}/{}", session.site, session.stream)
}

/// Ends the stream (Fanout closes it on an answer with no instruction), and says why.
fn end(services: &Services, site: Option<&SiteId>, reason: &str) -> Handled {
    services.log.emit(&Line::StreamEnded { site, reason });
    Handled {
        response: finish(hold::ended(), Vec::new()),
        broadcast: None,
        log_fields: format!("events=SSE-ENDED reason={reason}"),
    }
}
