//! The handoff and Fanout's calls back: the headers this service adds when it hands a
//! browser's connection to Fanout (only this service may set them: `main` strips them from what
//! the browser sent), and the check that a call back really comes from Fanout.

use http::Request;

use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::grip;
use crate::wire::request::header;

/// Headers this service puts on a WebSocket it hands to Fanout (after dropping any a client
/// sent), which Fanout passes on with the OPEN: the client's key and its socket ticket.
pub const CLIENT_HEADER: &str = "LiveUser-Client";
pub const TICKET_HEADER: &str = "LiveUser-Ticket";

/// Set by this service's handoff: the reader's country, as geolocation placed its address (two
/// letters; the address is not passed on). Its OPEN keeps it in meta, and its presence keys
/// carry it (see `country`).
pub const COUNTRY_HEADER: &str = "LiveUser-Country";

/// Set by this service's handoff on the upgrade of a crawler or automated browser: its OPEN
/// joins the channels but writes no presence and counts no visit (see `automated`).
pub const UNCOUNTED_HEADER: &str = "LiveUser-Uncounted";

/// Refuses a request that Fanout did not sign (403).
pub fn check_signature(req: &Request<Vec<u8>>, services: &Services) -> Result<(), HttpError> {
    services
        .grip
        .verify(
            header(req, grip::SIGNATURE_HEADER),
            services.clock.now_secs(),
        )
        .map_err(|e| HttpError::NotSigned {
            reason: e.to_string(),
        })
}
