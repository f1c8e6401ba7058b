//! The wire: the formats this service speaks with Fanout, the browser and the publish API, as
//! pure data and codecs (no I/O, no settings, no host calls).
//!
//! Owns: the WebSocket-over-HTTP event codec ([`websocket_events`]), GRIP's control messages
//! and reply headers ([`grip`]), the `Grip-Sig` verifier ([`grip_sig`]), the messages between
//! the browser client and the service ([`protocol`]), server-sent-event framing
//! ([`event_stream`]), the body of a publish request ([`publish`]), site ids ([`site`]), the
//! errors a request can end with and their statuses and close codes ([`error`]), a stable hash
//! ([`hash`]), and small helpers to read requests and build responses ([`request`],
//! [`response`]), and a threshold webhook's body and signature ([`webhook`]).
//!
//! May use: nothing else in the crate. Every other layer may use it.

pub mod error;
pub mod event_stream;
pub mod grip;
pub mod grip_sig;
pub mod hash;
pub mod protocol;
pub mod publish;
pub mod request;
pub mod response;
pub mod site;
pub mod webhook;
pub mod websocket_events;
