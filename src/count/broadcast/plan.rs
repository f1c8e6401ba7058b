//! What a broadcast is: the plan a request wins (a slot's change, or a sweep), what running
//! it comes to, and why it could fail.

use crate::count::census::CensusError;
use crate::platform::config::Config;
use crate::platform::kv::KvError;
use crate::platform::publisher::PublishError;
use crate::wire::site::SiteId;

/// How far apart two POPs' clocks may be (NTP keeps them within a few ms). A slot is cut by
/// the clock of the POP where a change happened and counted by another's, so the count waits
/// this much longer.
pub const CLOCK_MARGIN_MS: u64 = 20;

/// Why a broadcast was planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Presence changed (a join, a leave): always publishes.
    Change,
    /// A heartbeat's periodic check: publishes only what changed.
    Sweep { period: u64 },
}

/// A broadcast this request won in its POP, to run after answering its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub site: SiteId,
    /// When the slot ends; the count is taken after this plus the settle time.
    pub slot_end_ms: u64,
    pub reason: Reason,
}

impl Plan {
    /// When the broadcast may count: the slot's end plus the KV settle time (and the clock
    /// margin between POPs).
    pub fn wake_at_ms(&self, config: &Config) -> u64 {
        self.slot_end_ms + u64::from(config.kv_settle_ms) + CLOCK_MARGIN_MS
    }

    /// Whether this broadcast folds visits into the total: only slots that end in a new
    /// second do, so the tally key is written at most about once a second.
    pub(super) fn folds(&self, config: &Config) -> bool {
        let interval = u64::from(config.broadcast_interval_ms);
        self.slot_end_ms / 1000 != self.slot_end_ms.saturating_sub(interval) / 1000
    }
}

/// What running a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Another POP won the slot (or the sweep): nothing counted, nothing published.
    Lost,
    /// Counted.
    Counted(Counted),
}

/// A broadcast that counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub count: u64,
    /// The total sent to pages that show it (`None` when it could not be read: those pages
    /// then get no update this time, rather than a wrong one).
    pub total: Option<u64>,
    /// Keys the count listed.
    pub keys_listed: u64,
    /// List pages the count read (in every execution it was split over).
    pub lists: u64,
    /// Folded visit keys deleted.
    pub deleted: usize,
    /// `None`: a sweep found nothing to publish.
    pub publish: Option<Result<(), PublishError>>,
}

/// Why a broadcast could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastError {
    Claim(KvError),
    Count(CensusError),
}

impl std::fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BroadcastError::Claim(e) => write!(f, "claim: {e}"),
            BroadcastError::Count(e) => write!(f, "count: {e}"),
        }
    }
}
