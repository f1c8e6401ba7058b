//! Threshold webhooks: per site, "POST to this URL when the count reaches N, and when it falls
//! back below N − hysteresis", signed (see `wire::webhook`), at most once per crossing across
//! every POP, retried a bounded number of times, never in a reader's or a publish's way.
//!
//! Where: after a broadcast has counted, published and stored its snapshot ([`after_count`],
//! which `surfaces::serve` runs once the broadcast is logged), in the execution that won the
//! slot: at most two a second per site, wherever its readers are. The hooks are read from their
//! own KV key (`hooks/<site>`, cached per POP for [`settings::FRESH_MS`]; a site without hooks
//! costs a cache lookup); each hook's state is one lookup; a crossing is one insert-only write
//! that only one execution wins, and a state write ([`crossing`]). The winner delivers
//! ([`delivery`]): all of a broadcast's deliveries at once, each tried up to three times.
//!
//! Files: `settings` (a hook as the admin API takes it, stored), `crossing` (when a hook fires,
//! and that it fires once), `delivery` (the signed POST and its retries); this file checks a
//! count against a site's hooks and logs what was delivered.

pub mod crossing;
pub mod delivery;
pub mod settings;

use crate::platform::clock::iso8601;
use crate::platform::kv::KvError;
use crate::platform::log::{Line, WebhookResult};
use crate::platform::Services;
use crate::wire::site::SiteId;
use crate::wire::webhook::{self, Event};

pub use settings::{AddError, Hook, HookError, NewHook, MAX_HOOKS};

/// Checks `count` (the site's, just counted for the slot ending at `slot_end_ms`) against the
/// site's hooks, claims each crossing it makes, and delivers the ones this execution claimed.
pub fn after_count(services: &Services, site: &SiteId, count: u64, slot_end_ms: u64) {
    let hooks = match settings::for_broadcast(services, site) {
        Ok(hooks) => hooks,
        Err(e) => return failed(services, site, &e),
    };
    let at = iso8601(slot_end_ms);
    let mut owed = Vec::new();
    for hook in &hooks {
        match claimed(services, site, hook, count, &at) {
            Ok(Some(d)) => owed.push(d),
            Ok(None) => {}
            Err(e) => failed(services, site, &e),
        }
    }
    if owed.is_empty() {
        return;
    }
    for (d, done) in owed.iter().zip(delivery::deliver(services, &owed)) {
        let error;
        let result = match &done.result {
            Ok(status) => WebhookResult::Delivered { status: *status },
            Err(delivery::Failure::Refused(status)) => WebhookResult::Refused { status: *status },
            Err(delivery::Failure::GaveUp(e)) => {
                error = e.clone();
                WebhookResult::Failed { error: &error }
            }
        };
        services.log.emit(&Line::Webhook {
            site,
            hook: &d.hook,
            event: d.event,
            crossing: d.crossing,
            count: d.count,
            attempts: done.attempts,
            result,
        });
    }
}

fn failed(services: &Services, site: &SiteId, e: &KvError) {
    services.log.emit(&Line::Detail {
        event: "webhook-check-failed",
        site,
        detail: &e.to_string(),
    });
}

/// The delivery this execution owes for `hook`, if `count` crosses its threshold and this
/// execution's claim of the crossing won.
fn claimed(
    services: &Services,
    site: &SiteId,
    hook: &Hook,
    count: u64,
    at: &str,
) -> Result<Option<delivery::Delivery>, KvError> {
    let seen = crossing::read(services.kv, site, &hook.id)?;
    let Some(crossed) = crossing::next(&seen, hook, count, services.clock.now_ms()) else {
        return Ok(None);
    };
    let id = format!("{}.{}", hook.id, crossed.n);
    let body = webhook::body(&Event {
        id: &id,
        direction: crossed.direction,
        site: site.as_str(),
        hook: &hook.id,
        threshold: hook.above,
        hysteresis: hook.hysteresis,
        count,
        crossing: crossed.n,
        at,
    });
    if !crossing::claim(services.kv, site, &hook.id, &seen, crossed, body.as_bytes())? {
        return Ok(None);
    }
    Ok(Some(delivery::Delivery {
        hook: hook.id.clone(),
        url: hook.url.clone(),
        secret: hook.secret.clone(),
        id,
        event: crossed.direction.event(),
        crossing: crossed.n,
        count,
        body,
    }))
}

/// Removes the hook `id` from `site`, and its state: whether the site had it.
pub fn remove(services: &Services, site: &SiteId, id: &str) -> Result<bool, KvError> {
    let removed = settings::remove(services, site, id)?;
    if removed {
        // A state left behind names a hook that is gone: nothing reads it again.
        let _ = crossing::forget(services.kv, site, id);
    }
    Ok(removed)
}

/// Removes every hook of `site` and their states (the site is no longer served).
pub fn remove_all(services: &Services, site: &SiteId) -> Result<(), KvError> {
    for id in settings::remove_all(services, site)? {
        let _ = crossing::forget(services.kv, site, &id);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
