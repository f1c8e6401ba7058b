//! The platform: the seams over Compute's host services, each a trait so that everything above
//! is unit-tested natively with fakes and the simulator runs the service's own code over
//! models of them, and the settings and log lines those services carry.
//!
//! Owns: the KV store ([`kv`]), the per-POP cache ([`cache`]), time ([`clock`]), randomness
//! ([`ids`]), publishing to Fanout ([`publisher`]), calls to the service itself ([`peers`]), requests to URLs nobody declared in advance ([`outbound`]: webhook receivers), secrets ([`secrets`]), the settings read
//! from the config store ([`config`]), the log lines and where they go ([`log`]: the words of
//! every kind of line, from a request's cost to a refused visit, so that the log is one format
//! below everything that writes to it), the names
//! `fastly.toml` declares ([`fastly_toml`]), the bundle a request is handed ([`Services`]),
//! and, compiled for wasm32 only, the host implementations of every seam (`host`). Fakes of
//! the seams for unit tests live in `testing`.
//!
//! May use: [`crate::wire`] (a log line names a site or an error; the host publisher sends the
//! wire's publish body). Never `count` or `surfaces`.

pub mod cache;
pub mod clock;
pub mod config;
pub mod fastly_toml;
pub mod ids;
pub mod kv;
pub mod log;
pub mod outbound;
pub mod peers;
pub mod publisher;
pub mod secrets;
mod services;

#[cfg(target_arch = "wasm32")]
pub mod host;

#[cfg(test)]
pub(crate) mod testing;

pub use services::Services;
