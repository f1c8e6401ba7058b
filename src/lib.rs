//! LiveUser on Fastly Compute: a real-time "people online now" counter.
//!
//! Browsers open a WebSocket on `/ws`; the service hands it to Fanout, which holds it and calls
//! back with WebSocket-over-HTTP requests. Everything here is plain Rust over traits
//! ([`publish::Publisher`], [`config::ConfigSource`]); the host-backed implementations live
//! in [`host`] and are compiled for wasm32 only, so the logic is unit-tested natively.

pub mod admin;
pub mod api;
pub mod assets;
pub mod automated;
pub mod badge;
pub mod broadcast;
pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod fastly_toml;
pub mod floor;
pub mod grip;
pub mod grip_sig;
pub mod handover;
pub mod history;
pub mod ids;
pub mod kv;
pub mod limits;
pub mod loader;
pub mod log;
pub mod page;
pub mod presence;
pub mod protocol;
pub mod publish;
pub mod request;
pub mod response;
pub mod router;
pub mod secrets;
pub mod serve;
pub mod site;
pub mod snapshot;
pub mod sse;
pub mod totals;
pub mod websocket;
pub mod websocket_events;

#[cfg(target_arch = "wasm32")]
pub mod host;

#[cfg(test)]
pub(crate) mod testing;

/// The services a request may use, built once per request by `main` (or by tests).
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub config: &'a config::Config,
    pub publisher: &'a dyn publish::Publisher,
    pub kv: &'a dyn kv::KvStore,
    pub cache: &'a dyn cache::SharedCache,
    pub clock: &'a dyn clock::Clock,
    pub ids: &'a dyn ids::IdSource,
    pub grip: &'a grip_sig::GripVerifier,
    pub secrets: &'a dyn secrets::Secrets,
    /// Per-site settings (allowed origins), read on demand from the config store.
    pub settings: &'a dyn config::ConfigSource,
    /// Where log lines go.
    pub log: &'a dyn log::Log,
}

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
