//! Who broadcasts: a slot's (or a sweep's) claim, first in the POP's cache (one request per
//! POP and slot goes on), then across every POP with an insert-only KV write (exactly one wins).

use crate::count::broadcast::plan::{BroadcastError, Plan, Reason};
use crate::count::broadcast::recovery;
use crate::platform::kv::{KvError, WriteMode};
use crate::platform::Services;
use crate::wire::site::SiteId;

/// How long a slot or sweep claim key lives in KV (it only has to outlive the contention for
/// its slot; TTLs are whole seconds).
const CLAIM_TTL_SECS: u32 = 60;

fn slot_key(site: &SiteId, slot_end_ms: u64) -> String {
    format!("claim/{site}/slot/{slot_end_ms}")
}

fn sweep_key(site: &SiteId, period: u64) -> String {
    format!("claim/{site}/sweep/{period}")
}

fn slot_end(services: &Services) -> u64 {
    let interval = u64::from(services.config.broadcast_interval_ms);
    (services.clock.now_ms() / interval + 1) * interval
}

/// Claims the current slot's broadcast for `site` in this POP; `Some` when this request won
/// it (the KV claim, across POPs, comes when the plan runs). Call after the change is
/// written, so the slot's count includes it.
pub fn schedule(services: &Services, site: &SiteId) -> Option<Plan> {
    let slot_end_ms = slot_end(services);
    // The claim outlives the slot so a late request in it cannot claim it again.
    let ttl = u64::from(services.config.broadcast_interval_ms) * 4
        + u64::from(services.config.kv_settle_ms);
    services
        .cache
        .claim(&slot_key(site, slot_end_ms), ttl)
        .then(|| Plan {
            site: site.clone(),
            slot_end_ms,
            reason: Reason::Change,
        })
}

/// Claims this sweep period's sweep for `site` in this POP, if nobody here has yet: one
/// cache operation per heartbeat, no KV operation. (A slot this POP won whose count never came
/// is owed first: see `recovery`.)
pub fn sweep_due(services: &Services, site: &SiteId) -> Option<Plan> {
    if recovery::take_owed(services, site) {
        if let Some(plan) = schedule(services, site) {
            return Some(plan);
        }
    }
    let period_ms = u64::from(services.config.sweep_interval_secs) * 1000;
    let period = services.clock.now_ms() / period_ms;
    services
        .cache
        .claim(&sweep_key(site, period), period_ms * 2)
        .then(|| Plan {
            site: site.clone(),
            slot_end_ms: slot_end(services),
            reason: Reason::Sweep { period },
        })
}

/// Claims `key` across every POP: true for the one insert-only write that creates it.
fn claim_key(services: &Services, key: &str) -> Result<bool, BroadcastError> {
    match services
        .kv
        .insert(key, b"", Some(CLAIM_TTL_SECS), WriteMode::AddOnly)
    {
        Ok(()) => Ok(true),
        Err(KvError::PreconditionFailed | KvError::TooManyRequests) => Ok(false),
        Err(e) => Err(BroadcastError::Claim(e)),
    }
}

/// The first half of [`run`](super::run): claims the plan across every POP; false when another POP has
/// it. Done right away, so its write overlaps the wait for the slot's end.
pub fn claim(services: &Services, plan: &Plan) -> Result<bool, BroadcastError> {
    let site = &plan.site;
    if let Reason::Sweep { period } = plan.reason {
        if !claim_key(services, &sweep_key(site, period))? {
            return Ok(false);
        }
    }
    // A sweep that finds its slot already claimed is covered by that slot's broadcast.
    let won = claim_key(services, &slot_key(site, plan.slot_end_ms))?;
    if won {
        recovery::note_won(services, plan);
    }
    Ok(won)
}
