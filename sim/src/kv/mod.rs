//! The KV store, shared by every POP, with production's semantics:
//!
//! - a write or delete commits at once at the primary store (conditional writes are decided
//!   there, so insert-only and generation-match writes are exact across POPs), but each POP
//!   sees it only after a lag of its own: up to `kv_lag_max_ms` in listings, up to
//!   `kv_lookup_lag_max_ms` (seconds) in lookups, which read the POP's eventual copy;
//! - the store answers 429 to any call beyond `kv_store_ops_per_s` in one second;
//! - a list page takes longer the farther the POP is from the primary store;
//! - an expired key is not found by lookups, but stays listed for `kv_expired_listed_ms`
//!   (a day); the model forgets it sooner, `kv_forget_expired_ms` after it expired, to keep a
//!   million readers' ended windows out of memory, and counts every expired key a listing
//!   returns meanwhile: a design that listed expired keys would show there (the presence
//!   keys' verdict is that none is), so forgetting them early changes no listing;
//! - a key takes one write per `kv_key_write_interval_ms`; a faster write gets 429;
//! - list pages hold at most the limit asked for (the default when none is), capped;
//! - every operation costs its latency on the calling request's clock.
//!
//! [`KvModel`] (`model.rs`) is the store itself, its keys kept inline (`key.rs`); [`PopKv`]
//! (`pop.rs`) is one POP's view, implementing the service's own `KvStore` trait.

mod key;
mod model;
mod pop;

pub use crate::ops::{Ops, RequestOps};
pub use model::KvModel;
pub use pop::{stopped, PopKv};
