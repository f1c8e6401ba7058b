//! The services a request may use: the seams, built once per request by `main` (from the
//! host), by tests (from fakes) or by the simulator (from its models), and lent to every
//! handler as one bundle.

use crate::platform::cache::SharedCache;
use crate::platform::clock::Clock;
use crate::platform::config::{Config, ConfigSource};
use crate::platform::ids::IdSource;
use crate::platform::kv::KvStore;
use crate::platform::log::Log;
use crate::platform::outbound::Outbound;
use crate::platform::peers::Peers;
use crate::platform::publisher::Publisher;
use crate::platform::secrets::Secrets;
use crate::wire::grip_sig::GripVerifier;

/// The services a request may use, built once per request by `main` (or by tests).
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub config: &'a Config,
    pub publisher: &'a dyn Publisher,
    pub kv: &'a dyn KvStore,
    pub cache: &'a dyn SharedCache,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub grip: &'a GripVerifier,
    pub secrets: &'a dyn Secrets,
    /// Per-site settings (allowed origins), read on demand from the config store.
    pub settings: &'a dyn ConfigSource,
    /// Where log lines go.
    pub log: &'a dyn Log,
    /// Calls to this service itself (a split count's shares).
    pub peers: &'a dyn Peers,
    /// Requests to URLs nobody declared in advance (webhook receivers).
    pub outbound: &'a dyn Outbound,
}
