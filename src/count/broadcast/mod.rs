//! Count broadcasts: at most one per slot per site across every POP, and sweeps that notice
//! connections which vanished without an event.
//!
//! Broadcasting on every join and leave costs O(N²) messages in a connect burst. Instead, time
//! is cut into slots of `broadcast_interval_ms`. A presence change claims its slot's broadcast
//! in two steps: in the POP's cache (one request per POP and slot goes on), then in the KV
//! store, with an insert-only write of the slot's key (exactly one POP in the world wins, since
//! conditional writes are decided at the primary store). The winner waits for the slot's end
//! plus `kv_settle_ms` (so every change of the slot, in every POP, is visible), counts afresh
//! (see `census`), and publishes one update. Fanout's publishes are global, so a site gets at most
//! 1000 / interval broadcasts a second however many POPs serve it.
//!
//! The trade-off: a slot with changes in P POPs costs up to P insert-only writes (one wins),
//! in exchange for one listing and one publish instead of P of each.
//!
//! Connections that vanish without any event (a POP dying, a lost DISCONNECT) stop counting
//! when the last window their presence reached ends; nothing announces it. Heartbeats claim a
//! *sweep* at most once per `sweep_interval_secs` per site (the same two-step claim): the
//! sweep counts and publishes only if the count or total differs from the site's snapshot. No
//! heartbeat lists anything, and no count deletes a presence key.
//!
//! Every broadcast also stores the site's [`snapshot`](crate::count::snapshot), from which
//! any POP answers counts with a lookup, and folds finished seconds of visits into the site's
//! total (once a second).
//!
//! Files: `plan` (what a broadcast is), `claim` (who broadcasts), `finish` (counting and
//! publishing a won slot), `recovery` (a won slot whose execution died); this file runs a plan
//! and writes its log line.

mod claim;
mod finish;
mod plan;
mod recovery;

use crate::platform::kv::KvCounts;
use crate::platform::log::{BroadcastResult, Line, Log, Published};
use crate::platform::Services;

pub use claim::{claim, schedule, sweep_due};
pub use finish::finish;
pub use plan::{BroadcastError, Counted, Outcome, Plan, Reason, CLOCK_MARGIN_MS};

/// Runs a plan this POP won: claims it across POPs, waits for the slot to end and the store
/// to settle, counts, publishes (a sweep: only what changed), stores the snapshot, and then
/// deletes the visits it folded.
pub fn run(services: &Services, plan: &Plan) -> Result<Outcome, BroadcastError> {
    if !claim(services, plan)? {
        return Ok(Outcome::Lost);
    }
    services.clock.sleep_until(plan.wake_at_ms(services.config));
    finish(services, plan).map(Outcome::Counted)
}

/// KV operations one broadcast made, for its log line.
pub fn cost(before: KvCounts, after: KvCounts) -> KvCounts {
    KvCounts {
        lookup: after.lookup - before.lookup,
        insert: after.insert - before.insert,
        delete: after.delete - before.delete,
        list: after.list - before.list,
    }
}

/// Writes the broadcast's log line: what `plan` came to, and what it cost.
pub fn log(
    log: &dyn Log,
    plan: &Plan,
    outcome: &Result<Outcome, BroadcastError>,
    kv: KvCounts,
    publishes: u32,
    late_ms: u64,
) {
    let error = match outcome {
        Ok(Outcome::Counted(Counted {
            publish: Some(Err(e)),
            ..
        })) => e.to_string(),
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    let result = match outcome {
        Ok(Outcome::Lost) => BroadcastResult::Lost,
        Ok(Outcome::Counted(c)) => BroadcastResult::Counted {
            count: c.count,
            keys: c.keys_listed,
            deleted: c.deleted,
            publish: match &c.publish {
                None => Published::Unchanged,
                Some(Ok(())) => Published::Ok,
                Some(Err(_)) => Published::Failed { error: &error },
            },
        },
        Err(_) => BroadcastResult::CountFailed { error: &error },
    };
    log.emit(&Line::Broadcast {
        site: &plan.site,
        slot_end_ms: plan.slot_end_ms,
        reason: match plan.reason {
            Reason::Change => "change",
            Reason::Sweep { .. } => "sweep",
        },
        result,
        kv,
        publishes,
        late_ms,
    });
}

#[cfg(test)]
mod tests;
