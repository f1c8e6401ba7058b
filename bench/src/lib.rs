//! The LiveUser load generator: async WebSocket clients that behave like the real client,
//! the standard scenarios, and the report they produce.

pub mod clients;
pub mod report;
pub mod scenarios;
pub mod stats;
