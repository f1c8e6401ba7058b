//! What the end-to-end tests and the benchmarks share: a real local stack (Pushpin standing in
//! for Fanout, Viceroy running the wasm this project ships) on free ports, real WebSocket
//! clients, a small WebDriver client, a webhook receiver that checks signatures, and the
//! readers of the service's log lines and manifest.

pub mod browser;
pub mod client;
pub mod fastly_api;
pub mod fleet;
pub mod http;
pub mod jwt;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod net;
pub mod paths;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod sse;
pub mod stack;
pub mod wait;
