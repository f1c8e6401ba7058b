//! End-to-end tests: the shipped wasm under Viceroy, Pushpin standing in for Fanout, real
//! WebSocket clients and a real headless Chromium. Each test starts its own stack on free
//! ports (see the `liveuser-testkit` crate).

mod apps;
mod dashboard;
mod deploy;
mod embedding;
mod foundation;
mod idle;
mod limits;
mod presence;
mod production;
mod serve;
mod sites;
mod surfaces;
mod totals;
mod webhooks;
mod widget;
