//! Surfaces: what a request meets. The router picks an endpoint; each endpoint checks its
//! input, asks [`crate::count`] to do the work, and answers in the [`crate::wire`]'s formats.
//!
//! Owns: what `main` does with a request ([`serve`]: admit or refuse a handoff, answer, log
//! the cost, run the broadcast it won), routing ([`router`]), the handoff's headers and the
//! signature check of Fanout's calls back ([`handoff`]), a connection's query parameters
//! ([`params`]), the WebSocket-over-HTTP endpoint ([`websocket`]), the SSE fallback ([`sse`]),
//! the stats API ([`api`]) with its CORS and read budget ([`access`]), the live badge
//! ([`badge`]), the site registry's admin endpoints ([`sites`]) and each site's webhooks'
//! ([`webhooks`]), the owner's dashboard ([`dashboard`]), the shares of a split count asked by the service itself ([`census`]), the browser client as served ([`client`]), the loader script ([`loader`]), static files ([`assets`]) and the admin
//! credential ([`admin`]); and [`Handled`], what every endpoint answers.
//!
//! May use: every layer below ([`crate::count`], [`crate::platform`], [`crate::wire`]).
//! Endpoints share pieces through their own files here (`handoff`, `params`, `access`),
//! never by reaching into another endpoint.

pub mod access;
pub mod admin;
pub mod api;
pub mod assets;
pub mod badge;
pub mod census;
pub mod client;
pub mod dashboard;
pub mod handoff;
pub mod loader;
pub mod params;
pub mod router;
pub mod serve;
pub mod sites;
pub mod sse;
pub mod webhooks;
pub mod websocket;

use crate::count::broadcast;

/// A response, and the broadcast this request won (if any), to run after the response is sent
/// so the client is not kept waiting.
#[derive(Debug)]
pub struct Handled {
    pub response: http::Response<Vec<u8>>,
    pub broadcast: Option<broadcast::Plan>,
    /// Extra `name=value` fields for the request's log line (a WebSocket call's connection,
    /// site and events), so each event's cost can be read from one line.
    pub log_fields: String,
}

impl From<http::Response<Vec<u8>>> for Handled {
    fn from(response: http::Response<Vec<u8>>) -> Self {
        Handled {
            response,
            broadcast: None,
            log_fields: String::new(),
        }
    }
}
