//! LiveUser on Fastly Compute: a real-time "people online now" counter.
//!
//! Browsers open a WebSocket on `/ws` (or an SSE stream on `/sse`); the service hands it to
//! Fanout, which holds it and calls back with WebSocket-over-HTTP requests. The crate is four
//! layers, each a folder whose `mod.rs` says what it owns; a layer uses only the layers below
//! it (a test in `tests/layout.rs` keeps it so, and keeps files free of import cycles):
//!
//! - [`surfaces`]: what a request meets: the router, the WebSocket and SSE endpoints, the API,
//!   badge, loader and static files; what `main` does with a request ([`surfaces::serve`]).
//! - [`count`]: the domain: presence, broadcasts, snapshots, totals, history, pages, the privacy
//!   floor, per-client limits, the site registry, threshold webhooks.
//! - [`platform`]: the seams over Compute's host services (KV, cache, clock, ids, publisher,
//!   requests to arbitrary URLs, secrets, settings, log) and, for wasm32 only, their host
//!   implementations (`platform::host`), so everything above is unit-tested natively with fakes.
//! - [`wire`]: the formats spoken with Fanout, the browser and the publish API: pure data and
//!   codecs, no I/O.
//!
//! docs/ARCHITECTURE.md draws a request's path through them.

pub mod count;
pub mod platform;
pub mod surfaces;
pub mod wire;
