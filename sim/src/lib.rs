//! A deterministic simulator of Fastly's network for LiveUser: many POPs, one KV store with
//! production's lags and limits, a cache and Fanout per POP, and readers that come and go.
//! It runs the service's own request handling (`router::handle`, `broadcast::run`) over
//! simulated host services on a virtual clock, so hours of traffic take seconds to minutes.

pub mod cache;
pub mod clock;
pub mod compute;
pub mod fanout;
pub mod kv;
pub mod metrics;
pub mod ops;
pub mod params;
pub mod replay;
pub mod report;
pub mod rng;
pub mod scenarios;
pub mod world;
