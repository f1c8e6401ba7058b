//! What the end-to-end tests and the benchmarks share: a real local stack (Pushpin standing in
//! for Fanout, Viceroy running the wasm this project ships) on free ports, real WebSocket
//! clients, and a small WebDriver client for headless Chromium.

pub mod browser;
pub mod client;
pub mod fleet;
pub mod log;
pub mod stack;
