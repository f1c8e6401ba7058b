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

/// How long a count may run before it is taken for dead: far longer than any count takes, far
/// shorter than the two minutes Compute lets an execution run.
const COUNT_MS: u64 = 10_000;

/// `plan`'s count has started at `now_ms`: it is owed only if it runs past `COUNT_MS`.
pub(super) fn note_started(services: &Services, plan: &Plan, now_ms: u64) {
    if read_note(services, &plan.site) == Some((plan.slot_end_ms, None)) {
        let value = format!("{} {now_ms}", plan.slot_end_ms);
        services
            .cache
            .set(&key(&plan.site), value.as_bytes(), NOTE_MS);
    }
}

/// The note: the slot owed, and when its count started, if it has.
fn read_note(services: &Services, site: &SiteId) -> Option<(u64, Option<u64>)> {
    let bytes = services.cache.get(&key(site))?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut parts = text.split(' ');
    let slot = parts.next()?.parse().ok()?;
    Some((slot, parts.next().and_then(|s| s.parse().ok())))
}

/// `plan`'s count is done (published, or found nothing to publish).
pub(super) fn note_done(services: &Services, plan: &Plan) {
    // Only this plan's own note: a later slot won meanwhile is still owed.
    if read_note(services, &plan.site).is_some_and(|(slot, _)| slot == plan.slot_end_ms) {
        services.cache.set(&key(&plan.site), b"0", NOTE_MS);
    }
}

/// Whether a slot this POP won is owed: its count never started (two slots after it should
/// have woken), or started and never finished within `COUNT_MS` (Compute stopped it). Then
/// this request owes a broadcast of its own slot, and no other request of the POP does. One
/// cache read per call.
pub(super) fn take_owed(services: &Services, site: &SiteId) -> bool {
    let Some((owed, started)) = read_note(services, site).filter(|(s, _)| *s > 0) else {
        return false;
    };
    let config = services.config;
    let deadline = match started {
        None => {
            owed + u64::from(config.kv_settle_ms)
                + CLOCK_MARGIN_MS
                + 2 * u64::from(config.broadcast_interval_ms)
        }
        Some(at) => at + COUNT_MS,
    };
    if services.clock.now_ms() <= deadline {
        return false;
    }
    services.cache.set(&key(site), b"0", NOTE_MS);
    true
}
