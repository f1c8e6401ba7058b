//! Count broadcasts, throttled per site so fan-out does not grow with churn.
//!
//! Broadcasting on every join and leave costs O(N²) messages in a connect burst. Instead, time
//! is cut into slots of `broadcast_interval_ms`. A presence change in a slot claims the slot's
//! broadcast in the per-POP cache; exactly one request wins the claim and, after answering its
//! own client, waits for the slot's end (plus `kv_settle_ms` for the KV store's eventual
//! consistency), counts afresh and publishes one update to the site's channel. Every other
//! change in that slot costs no broadcast. So a site gets at most 1000/interval broadcasts a
//! second per POP, and the last change is broadcast within interval + settle + one count.
//!
//! Connections that vanish without an event are caught by heartbeats: a heartbeat compares the
//! (briefly cached, collapsed) count with the last one broadcast and claims a broadcast when
//! they differ.

use crate::cache;
use crate::kv::KvError;
use crate::presence;
use crate::protocol;
use crate::publish::{PublishError, PublishItem};
use crate::site::SiteId;
use crate::{totals, Services};

/// How long a computed count is shared between requests, in milliseconds.
pub const COUNT_CACHE_MS: u64 = 1000;
/// How long the last broadcast count is remembered (long enough to span heartbeat gaps).
const LAST_BROADCAST_MS: u64 = 3_600_000;

/// A broadcast this request won and must run after answering its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub site: SiteId,
    /// When the slot ends; the count is taken after this plus the settle time.
    pub slot_end_ms: u64,
}

/// What running a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub count: u64,
    /// The total sent to pages that show it (`None` when it could not be read: those pages
    /// then get no update this time, rather than a wrong one).
    pub total: Option<u64>,
    pub publish: Result<(), PublishError>,
}

/// Why a broadcast could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastError {
    Count(KvError),
}

fn slot_key(site: &SiteId, slot_end_ms: u64) -> String {
    format!("broadcast-slot/{site}/{slot_end_ms}")
}

fn count_key(site: &SiteId) -> String {
    format!("count/{site}")
}

fn last_key(site: &SiteId) -> String {
    format!("last-broadcast/{site}")
}

/// Claims the broadcast of the current slot for `site`; `Some` when this request won it.
/// Call after the change is written, so the slot's count includes it.
pub fn schedule(services: &Services, site: &SiteId) -> Option<Plan> {
    let interval = u64::from(services.config.broadcast_interval_ms);
    let now = services.clock.now_ms();
    let slot_end_ms = (now / interval + 1) * interval;
    // The claim outlives the slot so a late request in it cannot claim it again.
    let ttl = interval * 4 + u64::from(services.config.kv_settle_ms);
    services
        .cache
        .claim(&slot_key(site, slot_end_ms), ttl)
        .then(|| Plan {
            site: site.clone(),
            slot_end_ms,
        })
}

/// Runs a won broadcast: waits for the slot to end and the store to settle, counts, publishes.
pub fn run(services: &Services, plan: &Plan) -> Result<Outcome, BroadcastError> {
    services
        .clock
        .sleep_until(plan.slot_end_ms + u64::from(services.config.kv_settle_ms));
    let site = &plan.site;
    let count = presence::count(services.kv, site, services.clock.now_ms())
        .map_err(BroadcastError::Count)?;
    let text = count.to_string();
    services
        .cache
        .set(&count_key(site), text.as_bytes(), COUNT_CACHE_MS);
    // Read afresh: a visit counted in this slot must show in this slot's update.
    let total = totals::read(services.kv, site).ok();
    let id = format!("{}-{}", site, plan.slot_end_ms);
    let mut items = vec![PublishItem {
        channel: site.channel(),
        id: Some(format!("count-{id}")),
        content: protocol::update(count, None),
    }];
    if let Some(total) = total {
        totals::remember(services.cache, site, total);
        items.push(PublishItem {
            channel: site.totals_channel(),
            id: Some(format!("totals-{id}")),
            content: protocol::update(count, Some(total)),
        });
    }
    // Both channels in one publish request.
    let publish = services.publisher.publish(&items);
    if publish.is_ok() {
        services
            .cache
            .set(&last_key(site), text.as_bytes(), LAST_BROADCAST_MS);
    }
    Ok(Outcome {
        count,
        total,
        publish,
    })
}

/// The site's count, computed at most once per [`COUNT_CACHE_MS`] for all concurrent callers.
pub fn cached_count(services: &Services, site: &SiteId) -> Option<u64> {
    let mut compute = || {
        presence::count(services.kv, site, services.clock.now_ms())
            .ok()
            .map(|n| n.to_string().into_bytes())
    };
    let bytes = services
        .cache
        .get_or_compute(&count_key(site), COUNT_CACHE_MS, &mut compute)?;
    cache::parse_u64(&bytes)
}

/// Whether the site's current count differs from the last one broadcast (or none was).
pub fn count_is_stale(services: &Services, site: &SiteId) -> bool {
    let last = cache::get_u64(services.cache, &last_key(site));
    match cached_count(services, site) {
        Some(count) => last != Some(count),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::new_id_from;
    use crate::testing::TestServices;

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).expect("site")
    }

    fn join(t: &TestServices, s: &SiteId, n: u64) -> presence::Lease {
        let services = t.services();
        presence::join(
            services.kv,
            services.config,
            s,
            new_id_from([0, n]),
            t.clock.now.get(),
        )
        .expect("join")
    }

    #[test]
    fn one_claim_per_slot_and_a_new_one_next_slot() {
        let t = TestServices::new();
        t.set_time(10_100);
        let s = site("a");
        let first = schedule(&t.services(), &s);
        assert_eq!(
            first,
            Some(Plan {
                site: s.clone(),
                slot_end_ms: 10_500
            })
        );
        t.set_time(10_499);
        assert_eq!(schedule(&t.services(), &s), None);
        assert_eq!(
            schedule(&t.services(), &site("b")).map(|p| p.slot_end_ms),
            Some(10_500)
        );
        t.set_time(10_500);
        assert_eq!(
            schedule(&t.services(), &s).map(|p| p.slot_end_ms),
            Some(11_000)
        );
    }

    #[test]
    fn a_burst_of_changes_costs_one_broadcast_per_slot() {
        let t = TestServices::new();
        let s = site("a");
        let mut plans = Vec::new();
        // 200 joins spread over one second: 2 slots.
        for n in 0..200u64 {
            t.set_time(20_000 + n * 5);
            join(&t, &s, n);
            plans.extend(schedule(&t.services(), &s));
        }
        assert_eq!(plans.len(), 2);
        for plan in &plans {
            run(&t.services(), plan).expect("broadcast");
        }
        let published = t.publisher.published.borrow();
        // Two broadcasts, each one item per channel (count only, and with totals).
        assert_eq!(published.len(), 4);
        let last: serde_json::Value = serde_json::from_str(&published[2].content).expect("json");
        assert_eq!(last, serde_json::json!({"type": "update", "count": 200}));
        assert_eq!(published[2].channel, "site:a");
        let with_totals: serde_json::Value =
            serde_json::from_str(&published[3].content).expect("json");
        assert_eq!(
            with_totals,
            serde_json::json!({"type": "update", "count": 200, "totalCount": 0})
        );
        assert_eq!(published[3].channel, "site-totals:a");
    }

    #[test]
    fn the_broadcast_waits_for_slot_end_and_settle_then_counts_afresh() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(1_000);
        join(&t, &s, 1);
        let plan = schedule(&t.services(), &s).expect("won");
        // A change later in the same slot is included, because counting happens after it.
        t.set_time(1_400);
        join(&t, &s, 2);
        assert_eq!(schedule(&t.services(), &s), None);
        let outcome = run(&t.services(), &plan).expect("broadcast");
        assert_eq!(outcome.count, 2);
        assert_eq!(t.clock.now.get(), 1_500 + 300);
    }

    #[test]
    fn heartbeats_notice_a_count_that_changed_without_an_event() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(0);
        join(&t, &s, 1);
        join(&t, &s, 2);
        let plan = schedule(&t.services(), &s).expect("won");
        run(&t.services(), &plan).expect("broadcast");
        assert!(!count_is_stale(&t.services(), &s));
        // Connection 2 vanished; connection 1 keeps its presence fresh.
        t.set_time(30_000);
        let lease = presence::Lease {
            id: new_id_from([0, 1]),
            expiries_ms: vec![60_000],
        };
        presence::refresh(&t.kv, &t.config, &s, &lease, 30_000).expect("refresh");
        t.set_time(60_000);
        assert!(count_is_stale(&t.services(), &s));
        assert_eq!(cached_count(&t.services(), &s), Some(1));
    }

    #[test]
    fn the_count_is_cached_between_computations() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(0);
        join(&t, &s, 1);
        assert_eq!(cached_count(&t.services(), &s), Some(1));
        join(&t, &s, 2);
        assert_eq!(
            cached_count(&t.services(), &s),
            Some(1),
            "served from cache"
        );
        t.set_time(COUNT_CACHE_MS);
        assert_eq!(cached_count(&t.services(), &s), Some(2));
    }
}
