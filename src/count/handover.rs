//! Tabs of one browser sharing one connection (the client's default; `countTabs=true` turns
//! it off): one tab holds the socket, the others hear the count through it, so a person with
//! five tabs counts once. Two things make that exact:
//!
//! - **Handover.** When the holding tab closes, another takes over with a new socket. So
//!   that the count others see does not dip (−1, then +1), the closing socket says so with
//!   close code [`CLOSE_CODE`] and its presence is left in place; the new socket names that
//!   presence (`handover=<token>`, the token the old socket was given in its OPEN reply) and
//!   refreshes it instead of adding one. A presence no socket takes over expires with its TTL.
//! - **Relayed visits.** Each tab is a page view, but only the holding tab has a socket: it
//!   sends `{"type":"visit"}` for each other tab that opens, at most [`MAX_RELAYED_VISITS`]
//!   per connection (and within the client's hourly share of visits).

/// The close code of a holding tab that hands its presence over.
pub const CLOSE_CODE: u16 = 4001;
/// The query parameter with which a socket asks for a handover token (`shareTabs=1`).
pub const SHARE_PARAM: &str = "shareTabs";
/// The query parameter naming the presence a new holding tab takes over.
pub const HANDOVER_PARAM: &str = "handover";
/// Visits one connection may relay for other tabs.
pub const MAX_RELAYED_VISITS: u32 = 100;
