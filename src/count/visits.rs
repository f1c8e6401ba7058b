//! Admitting one visit: a socket's or stream's opening, or a visit relayed for another tab, is
//! added to the site's total within its client's hourly share (see `limits` and `totals`).

use crate::count::limits::{self, ClientKey, Verdict};
use crate::count::totals;
use crate::platform::log::Line;
use crate::platform::Services;
use crate::wire::site::SiteId;

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
