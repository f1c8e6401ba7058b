//! End-to-end tests: the shipped wasm under Viceroy, Pushpin standing in for Fanout, real
//! WebSocket clients. Each test starts its own stack on free ports.

mod browser;
mod client;
mod fleet;
mod foundation;
mod presence;
mod production;
mod stack;
mod totals;
mod widget;
