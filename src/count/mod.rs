//! Counting: the domain. Who is online and on which page, how a count reaches every reader
//! within a slot, how many visits a site had, and what each reader may be shown or may do.
//!
//! Owns: presence keys and leases ([`presence`]), counting a window of them ([`tally`]) and
//! splitting that count over executions ([`census`]), broadcasts and sweeps ([`broadcast`]), the
//! snapshot every POP reads counts from ([`snapshot`]) and the peaks it carries ([`peak`]),
//! per-minute history ([`history`]), total visits ([`totals`]) and the admission of one visit
//! ([`visits`]), a reader's first count ([`first_count`]), per-page counts ([`page`]), readers by
//! country ([`country`]), the owner's dashboard message ([`dashboard`]), the privacy floor
//! ([`floor`]), per-client limits ([`limits`]), the site registry and its per-site settings
//! ([`registry`]), threshold webhooks ([`hooks`]), tabs sharing one connection ([`handover`]) and crawlers left
//! uncounted ([`automated`]).
//!
//! May use: [`crate::platform`] (through [`crate::platform::Services`]) and [`crate::wire`].
//! Never `surfaces`: nothing here knows which endpoint asked.

pub mod automated;
pub mod broadcast;
pub mod census;
pub mod country;
pub mod dashboard;
pub mod first_count;
pub mod floor;
pub mod handover;
pub mod history;
pub mod hooks;
pub mod limits;
pub mod page;
pub mod peak;
pub mod presence;
pub mod registry;
pub mod snapshot;
pub mod tally;
pub mod totals;
pub mod visits;
