//! A won broadcast whose execution dies (Compute stops it at a limit, or its host fails) has
//! taken its slot's KV claim: no other POP counts that slot, and the change it was to publish
//! would wait for the next change or sweep. So the POP that wins a slot notes it in its cache,
//! and clears the note once the count is done; the next request of the site in that POP (a
//! heartbeat, a join) that finds a note older than any count could take plans a broadcast of
//! its own slot, which counts everything the dead one would have.
//!
//! A POP that dies loses its cache and its notes; its readers reconnect through other POPs,
//! and their joins are changes that broadcast.

use crate::count::broadcast::plan::{Plan, CLOCK_MARGIN_MS};
use crate::platform::cache;
use crate::platform::Services;
use crate::wire::site::SiteId;

/// How long a note lives: far longer than any count takes.
const NOTE_MS: u64 = 60_000;

fn key(site: &SiteId) -> String {
    format!("won/{site}")
}

/// This POP won `plan`'s slot across every POP: its count is now owed.
pub(super) fn note_won(services: &Services, plan: &Plan) {
    let slot = plan.slot_end_ms.to_string();
    services
        .cache
        .set(&key(&plan.site), slot.as_bytes(), NOTE_MS);
}

/// `plan`'s count is done (published, or found nothing to publish).
pub(super) fn note_done(services: &Services, plan: &Plan) {
    // Only this plan's own note: a later slot won meanwhile is still owed.
    if cache::get_u64(services.cache, &key(&plan.site)) == Some(plan.slot_end_ms) {
        services.cache.set(&key(&plan.site), b"0", NOTE_MS);
    }
}

/// Whether a slot this POP won has gone uncounted for longer than its count could take (its
/// wake time and two more slots): then this request owes a broadcast of its own slot, and no
/// other request of the POP does. One cache read per call.
pub(super) fn take_owed(services: &Services, site: &SiteId) -> bool {
    let Some(owed) = cache::get_u64(services.cache, &key(site)).filter(|s| *s > 0) else {
        return false;
    };
    let config = services.config;
    let deadline = owed
        + u64::from(config.kv_settle_ms)
        + CLOCK_MARGIN_MS
        + 2 * u64::from(config.broadcast_interval_ms);
    if services.clock.now_ms() <= deadline {
        return false;
    }
    services.cache.set(&key(site), b"0", NOTE_MS);
    true
}
