//! Count broadcasts: at most one per slot per site across every POP, and sweeps that notice
//! connections which vanished without an event.
//!
//! Broadcasting on every join and leave costs O(N²) messages in a connect burst. Instead, time
//! is cut into slots of `broadcast_interval_ms`. A presence change claims its slot's broadcast
//! in two steps: in the POP's cache (one request per POP and slot goes on), then in the KV
//! store, with an insert-only write of the slot's key (exactly one POP in the world wins, since
//! conditional writes are decided at the primary store). The winner waits for the slot's end
//! plus `kv_settle_ms` (so every change of the slot, in every POP, is visible), counts afresh,
//! and publishes one update. Fanout's publishes are global, so a site gets at most
//! 1000 / interval broadcasts a second however many POPs serve it.
//!
//! The trade-off: a slot with changes in P POPs costs up to P insert-only writes (one wins),
//! in exchange for one listing and one publish instead of P of each.
//!
//! Connections that vanish without any event (a POP dying, a lost DISCONNECT) expire; nothing
//! announces it. Heartbeats claim a *sweep* at most once per `sweep_interval_secs` per site
//! (the same two-step claim): the sweep counts, deletes the keys of connections whose presence
//! has expired (production would list them for up to a day), and publishes only if the count
//! or total differs from the site's snapshot. No heartbeat lists anything.
//!
//! Every broadcast also stores the site's [`snapshot`], from which any POP answers counts with
//! a lookup, and folds finished seconds of visits into the site's total (once a second).

use crate::count::floor::Floor;
use crate::count::history;
use crate::count::page;
use crate::count::peak;
use crate::count::presence;
use crate::count::snapshot::{self, Snapshot};
use crate::platform::config::Config;
use crate::platform::kv::{list_all, KvCounts, KvError, WriteMode};
use crate::platform::log::{BroadcastResult, Line, Log, Published};
use crate::platform::publisher::{PublishError, PublishItem};
use crate::wire::protocol;
use crate::wire::site::SiteId;
use crate::{count::totals, platform::Services};

/// How far apart two POPs' clocks may be (NTP keeps them within a few ms). A slot is cut by
/// the clock of the POP where a change happened and counted by another's, so the count waits
/// this much longer.
pub const CLOCK_MARGIN_MS: u64 = 20;
/// How long a slot or sweep claim key lives in KV (it only has to outlive the contention for
/// its slot; TTLs are whole seconds).
const CLAIM_TTL_SECS: u32 = 60;
/// The most expired keys one broadcast deletes (the rest wait for the next sweep).
const MAX_SWEEP_DELETES: usize = 1000;

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
    fn folds(&self, config: &Config) -> bool {
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
    /// Expired presence keys and folded visit keys deleted.
    pub deleted: usize,
    /// `None`: a sweep found nothing to publish.
    pub publish: Option<Result<(), PublishError>>,
}

/// Why a broadcast could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastError {
    Claim(KvError),
    Count(KvError),
}

impl std::fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BroadcastError::Claim(e) => write!(f, "claim: {e}"),
            BroadcastError::Count(e) => write!(f, "count: {e}"),
        }
    }
}

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
/// cache operation per heartbeat, no KV operation.
pub fn sweep_due(services: &Services, site: &SiteId) -> Option<Plan> {
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

/// Runs a plan this POP won: claims it across POPs, waits for the slot to end and the store
/// to settle, counts, publishes (a sweep: only what changed), stores the snapshot, and then
/// deletes what the count found expired.
pub fn run(services: &Services, plan: &Plan) -> Result<Outcome, BroadcastError> {
    if !claim(services, plan)? {
        return Ok(Outcome::Lost);
    }
    services.clock.sleep_until(plan.wake_at_ms(services.config));
    finish(services, plan).map(Outcome::Counted)
}

/// The first half of [`run`]: claims the plan across every POP; false when another POP has
/// it. Done right away, so its write overlaps the wait for the slot's end.
pub fn claim(services: &Services, plan: &Plan) -> Result<bool, BroadcastError> {
    let site = &plan.site;
    if let Reason::Sweep { period } = plan.reason {
        if !claim_key(services, &sweep_key(site, period))? {
            return Ok(false);
        }
    }
    // A sweep that finds its slot already claimed is covered by that slot's broadcast.
    claim_key(services, &slot_key(site, plan.slot_end_ms))
}

/// The second half of [`run`], at or after [`Plan::wake_at_ms`]: counts, publishes, stores the
/// snapshot, deletes what the count found expired.
pub fn finish(services: &Services, plan: &Plan) -> Result<Counted, BroadcastError> {
    let site = &plan.site;
    let now = services.clock.now_ms();
    // One listing reads the site's presence and its unfolded visits.
    let keys = list_all(services.kv, &site.listing_prefix()).map_err(BroadcastError::Count)?;
    let ttl_ms = u64::from(services.config.presence_ttl_secs) * 1000;
    let census = presence::census_of(&keys, site, now, ttl_ms);
    let settled =
        totals::settle_listed(services.kv, site, now, plan.folds(services.config), &keys).ok();
    let total = settled.as_ref().map(|s| s.total);
    let mut last = last_snapshot(services, plan);
    let minute = peak::minute_of(plan.slot_end_ms);
    let mut current = Snapshot {
        slot_end_ms: plan.slot_end_ms,
        count: census.live,
        total,
        pages: busiest_pages(&census.pages),
        peak: Some(snapshot::next_peak(last.as_ref(), minute, census.live)),
    };
    let needed = needs_publish(plan, &current, last.as_ref(), census.newest_join_ms, now);
    let publish = if needed {
        let result = publish(services, site, &current, last.as_ref());
        // A change counted from this POP's second-old copy: the stored snapshot may hold a
        // later broadcast's peaks (from another POP). Read it now, the pages told already.
        if plan.reason == Reason::Change {
            if let Ok(Some(stored)) = snapshot::read(services.kv, services.config, site) {
                let stored_peak = snapshot::next_peak(Some(&stored), minute, census.live);
                current.peak = current.peak.map(|p| peak::merge(p, stored_peak));
                if last
                    .as_ref()
                    .is_none_or(|l| stored.slot_end_ms > l.slot_end_ms)
                {
                    last = Some(stored);
                }
            }
        }
        if result.is_ok() {
            // Best effort: a snapshot that could not be stored only means the next sweep
            // publishes again.
            let _ = snapshot::write(services.kv, services.config, site, &current);
            snapshot::remember(services.cache, site, &current);
        }
        Some(result)
    } else {
        None
    };
    // After the publish, so the pages have their count first: a minute that has ended since
    // the last snapshot goes into the site's history, and what the count found expired goes.
    if let Some(last) = &last {
        let quiet = history::Quiet::of(services.config);
        if let Err(e) = history::record(services.kv, site, last, minute, quiet) {
            services.log.emit(&Line::Detail {
                event: "history-write-failed",
                site,
                detail: &e.to_string(),
            });
        }
    }
    let mut doomed = census.orphaned;
    doomed.truncate(MAX_SWEEP_DELETES);
    doomed.extend(settled.map(|s| s.to_delete).unwrap_or_default());
    let failed = services.kv.delete_many(&doomed).len();
    Ok(Counted {
        count: census.live,
        total,
        keys_listed: census.keys,
        deleted: doomed.len() - failed,
        publish,
    })
}

/// A change always publishes; a sweep publishes when the count or total differs from the
/// stored snapshot, when a connection joined after it (a join and a leave in one slot leave
/// the count as it was, but the new page needs it), or when the last publish is old.
fn needs_publish(
    plan: &Plan,
    current: &Snapshot,
    last: Option<&Snapshot>,
    newest_join_ms: Option<u64>,
    now: u64,
) -> bool {
    if plan.reason == Reason::Change {
        return true;
    }
    match last {
        Some(last) => {
            last.count != current.count
                || (current.total.is_some() && last.total != current.total)
                || last.pages != current.pages
                || newest_join_ms.is_some_and(|j| j + CLOCK_MARGIN_MS > last.slot_end_ms)
                || now >= last.slot_end_ms + snapshot::REFRESH_MS
        }
        None => true,
    }
}

/// The last snapshot: a sweep reads the stored one (it decides whether anything changed); a
/// change takes this POP's one-second copy, which the joins that claimed it have mostly read
/// already (it carries the running peaks, and the pages that may have lost their count).
fn last_snapshot(services: &Services, plan: &Plan) -> Option<Snapshot> {
    let found = match plan.reason {
        Reason::Change => snapshot::cached(services, &plan.site),
        Reason::Sweep { .. } => snapshot::read(services.kv, services.config, &plan.site),
    };
    found.ok().flatten()
}

/// The pages with counts: the busiest `page::MAX_PAGES` (ties by page id, so every broadcast
/// picks the same), by page id.
fn busiest_pages(pages: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut busiest: Vec<(String, u64)> = pages.iter().map(|(p, n)| (p.clone(), *n)).collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    busiest.truncate(page::MAX_PAGES);
    busiest.sort();
    busiest
}

/// Every channel in one publish request: the site's, its totals', one per page with a count,
/// and one per page that had a count in `last` and has none now (its readers, if any, learn
/// it is 0 or fell out of the busiest pages). Item ids are unique per site and slot, and only
/// one POP broadcasts a slot, so Fanout never drops a fresher count as a repeat.
fn publish(
    services: &Services,
    site: &SiteId,
    s: &Snapshot,
    last: Option<&Snapshot>,
) -> Result<(), PublishError> {
    let id = format!("{site}-{}", s.slot_end_ms);
    let floor = Floor::of(services.settings, site);
    let count = floor.show(s.count);
    let mut items = vec![PublishItem {
        channel: site.channel(),
        id: Some(format!("count-{id}")),
        content: protocol::update(count, None),
    }];
    if let Some(total) = s.total {
        items.push(PublishItem {
            channel: site.totals_channel(),
            id: Some(format!("totals-{id}")),
            content: protocol::update(count, Some(total)),
        });
    }
    let dropped = last
        .into_iter()
        .flat_map(|l| l.pages.iter())
        .filter(|(p, _)| !s.has_page(p));
    for (page_id, _) in s.pages.iter().chain(dropped) {
        items.push(PublishItem {
            channel: page::channel(site, page_id),
            id: Some(format!("page-{page_id}-{id}")),
            content: protocol::page_update(
                count,
                None,
                s.page_count(page_id).map(|n| floor.show(n)),
            ),
        });
    }
    services.publisher.publish(&items)
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
mod tests {
    use super::*;
    use crate::count::presence::new_id_from;
    use crate::platform::kv::KvStore;
    use crate::platform::publisher::Publisher;
    use crate::platform::testing::{MemoryCache, TestServices};

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).expect("site")
    }

    fn join(t: &TestServices, s: &SiteId, n: u64) -> presence::Lease {
        presence::join(&t.kv, &t.config, s, new_id_from([0, n]), t.clock.now.get()).expect("join")
    }

    fn counted(outcome: Result<Outcome, BroadcastError>) -> Counted {
        match outcome {
            Ok(Outcome::Counted(c)) => c,
            other => panic!("expected a count, got {other:?}"),
        }
    }

    #[test]
    fn page_readers_get_their_pages_count_and_a_page_left_empty_is_told_so() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(0);
        let (docs, blog) = (
            page::id(&s, "/docs").expect("id"),
            page::id(&s, "/blog").expect("id"),
        );
        let on = |n: u64, p: &str| {
            presence::join_on(
                &t.kv,
                &t.config,
                &s,
                new_id_from([0, n]),
                Some(p.to_string()),
                0,
            )
            .expect("join")
        };
        on(1, &docs);
        on(2, &docs);
        let blogger = on(3, &blog);
        join(&t, &s, 4);
        let plan = schedule(&t.services(), &s).expect("won");
        assert_eq!(counted(run(&t.services(), &plan)).count, 4);
        let page_items = |t: &TestServices| -> Vec<(String, String)> {
            t.publisher
                .published
                .borrow()
                .iter()
                .filter(|i| i.channel.starts_with("page:"))
                .map(|i| (i.channel.clone(), i.content.clone()))
                .collect()
        };
        let mut expected = vec![
            (
                format!("page:a:{docs}"),
                r#"{"type":"update","count":4,"pageCount":2}"#.to_string(),
            ),
            (
                format!("page:a:{blog}"),
                r#"{"type":"update","count":4,"pageCount":1}"#.to_string(),
            ),
        ];
        expected.sort();
        let mut got = page_items(&t);
        got.sort();
        assert_eq!(got, expected);

        // The blog's reader leaves: the next broadcast tells the blog's channel 0 (from this
        // POP's memory of the last snapshot; a sweep knows it from the stored one).
        t.publisher.published.borrow_mut().clear();
        t.set_time(700);
        presence::leave(&t.kv, &t.clock, &s, &blogger).expect("leave");
        let plan = schedule(&t.services(), &s).expect("won");
        counted(run(&t.services(), &plan));
        let mut got = page_items(&t);
        got.sort();
        let mut expected = vec![
            (
                format!("page:a:{docs}"),
                r#"{"type":"update","count":3,"pageCount":2}"#.to_string(),
            ),
            (
                format!("page:a:{blog}"),
                r#"{"type":"update","count":3,"pageCount":0}"#.to_string(),
            ),
        ];
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn below_the_privacy_floor_no_broadcast_carries_the_exact_count() {
        let mut t = TestServices::new();
        t.settings.insert("min_count.a".into(), "3".into());
        let s = site("a");
        t.set_time(0);
        join(&t, &s, 1);
        let plan = schedule(&t.services(), &s).expect("won");
        assert_eq!(
            counted(run(&t.services(), &plan)).count,
            1,
            "counted exactly"
        );
        let contents: Vec<String> = t
            .publisher
            .published
            .borrow()
            .iter()
            .map(|i| i.content.clone())
            .collect();
        assert_eq!(
            contents[0],
            r#"{"type":"update","count":3,"belowMin":true}"#
        );
    }

    #[test]
    fn a_peak_another_pop_published_is_not_lost_to_this_pops_older_copy() {
        let t = TestServices::new();
        let s = site("a");
        let now = 1_800_000_000_000;
        t.set_time(now);
        let minute = peak::minute_of(now);
        let peak = |p: u64| {
            Some(peak::Peak {
                minute,
                minute_peak: p,
                day_peak: p,
            })
        };
        // This POP remembers a second-old snapshot of 10; another POP has since stored 20.
        let older = Snapshot {
            slot_end_ms: now - 1_000,
            count: 10,
            peak: peak(10),
            ..Snapshot::default()
        };
        snapshot::remember(&t.cache, &s, &older);
        let stored = Snapshot {
            slot_end_ms: now - 500,
            count: 20,
            peak: peak(20),
            ..Snapshot::default()
        };
        snapshot::write(&t.kv, &t.config, &s, &stored).expect("snapshot");
        for n in 0..12 {
            join(&t, &s, n);
        }
        let plan = schedule(&t.services(), &s).expect("won");
        assert_eq!(counted(run(&t.services(), &plan)).count, 12);
        let after = snapshot::read(&t.kv, &t.config, &s)
            .expect("read")
            .expect("some");
        assert_eq!(
            after.peak.map(|p| (p.minute_peak, p.day_peak)),
            Some((20, 20))
        );
    }

    #[test]
    fn beyond_the_busiest_pages_a_page_has_no_count() {
        let mut pages = std::collections::BTreeMap::new();
        for n in 0..(page::MAX_PAGES as u64 + 10) {
            pages.insert(format!("{n:016x}"), 1 + n % 3);
        }
        let busiest = busiest_pages(&pages);
        assert_eq!(busiest.len(), page::MAX_PAGES);
        let least_kept = busiest.iter().map(|(_, n)| *n).min();
        let most_dropped = pages
            .iter()
            .filter(|(p, _)| !busiest.iter().any(|(b, _)| b == *p))
            .map(|(_, n)| *n)
            .max();
        assert!(least_kept >= most_dropped, "the busiest are kept");
        assert!(busiest.windows(2).all(|w| w[0].0 < w[1].0), "by page id");
        let s = Snapshot {
            pages: busiest,
            ..Snapshot::default()
        };
        let kept = &s.pages[0].0;
        assert_eq!(s.page_count(kept), Some(s.pages[0].1));
        let dropped = (0..)
            .map(|n: u64| format!("{n:016x}"))
            .find(|p| !s.has_page(p));
        assert_eq!(s.page_count(&dropped.expect("one")), None);
        assert_eq!(Snapshot::default().page_count(kept), Some(0));
    }

    #[test]
    fn one_claim_per_slot_in_a_pop_and_a_new_one_next_slot() {
        let t = TestServices::new();
        t.set_time(10_100);
        let s = site("a");
        let first = schedule(&t.services(), &s);
        assert_eq!(
            first,
            Some(Plan {
                site: s.clone(),
                slot_end_ms: 10_500,
                reason: Reason::Change,
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
            counted(run(&t.services(), plan));
        }
        let published = t.publisher.published.borrow();
        // Two broadcasts, each one item per channel (count only, and with totals).
        assert_eq!(published.len(), 4);
        let last: serde_json::Value = serde_json::from_str(&published[2].content).expect("json");
        assert_eq!(last, serde_json::json!({"type": "update", "count": 200}));
        assert_eq!(published[2].channel, "site:a");
        assert_eq!(published[2].id.as_deref(), Some("count-a-21000"));
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
        assert_eq!(counted(run(&t.services(), &plan)).count, 2);
        assert_eq!(t.clock.now.get(), 1_500 + 300 + CLOCK_MARGIN_MS);
    }

    #[test]
    fn pops_with_changes_in_one_slot_make_one_broadcast_between_them() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(5_000);
        let caches: Vec<MemoryCache> = (0..5).map(|_| MemoryCache::default()).collect();
        let mut plans = Vec::new();
        for (n, cache) in caches.iter().enumerate() {
            cache.clock_ms.set(5_000);
            join(&t, &s, n as u64);
            let pop = t.services_with_cache(cache);
            plans.push(schedule(&pop, &s).expect("each POP wins its own claim"));
        }
        let outcomes: Vec<Outcome> = caches
            .iter()
            .zip(&plans)
            .map(|(cache, plan)| run(&t.services_with_cache(cache), plan).expect("ran"))
            .collect();
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Counted(_)))
            .count();
        assert_eq!(won, 1, "{outcomes:?}");
        assert_eq!(t.publisher.published.borrow().len(), 2);
    }

    #[test]
    fn a_sweep_is_claimed_once_per_period_and_publishes_only_a_change() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(0);
        join(&t, &s, 1);
        let leaving = join(&t, &s, 2);
        let plan = schedule(&t.services(), &s).expect("won");
        counted(run(&t.services(), &plan));
        assert_eq!(t.publisher.published.borrow().len(), 2);

        // Nothing changed: the sweep counts but publishes nothing.
        t.set_time(20_000);
        let sweep = sweep_due(&t.services(), &s).expect("first heartbeat of the period");
        assert_eq!(
            sweep_due(&t.services(), &s),
            None,
            "once per period in a POP"
        );
        let quiet = counted(run(&t.services(), &sweep));
        assert_eq!((quiet.count, quiet.publish.clone()), (2, None));

        // Connection 2 vanished (no event); connection 1 keeps its presence fresh.
        let lease = presence::Lease {
            id: new_id_from([0, 1]),
            expiries_ms: vec![45_000],
            page: None,
        };
        t.set_time(30_000);
        presence::refresh(&t.kv, &t.config, &s, &lease, 30_000).expect("refresh");
        t.set_time(50_000);
        let sweep = sweep_due(&t.services(), &s).expect("next period");
        let noticed = counted(run(&t.services(), &sweep));
        assert_eq!(noticed.count, 1);
        assert_eq!(noticed.publish, Some(Ok(())));
        // Its key was deleted by the sweep: production would have listed it for a day.
        assert_eq!(noticed.deleted, 1);
        let gone = presence::key(&s, &leaving.id, leaving.expiries_ms[0]);
        assert_eq!(t.kv.lookup(&gone), Ok(None));
    }

    #[test]
    fn a_sweep_publishes_a_join_even_when_a_leave_kept_the_count() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(0);
        join(&t, &s, 1);
        let leaving = join(&t, &s, 2);
        counted(run(
            &t.services(),
            &schedule(&t.services(), &s).expect("won"),
        ));
        // In one slot another POP's page joins and another leaves; the sweep wins the slot.
        t.set_time(20_000);
        join(&t, &s, 3);
        presence::leave(&t.kv, &t.clock, &s, &leaving).expect("leave");
        let sweep = sweep_due(&t.services(), &s).expect("won");
        let c = counted(run(&t.services(), &sweep));
        assert_eq!(c.count, 2, "as before");
        assert_eq!(c.publish, Some(Ok(())), "the new page must be told");
    }

    #[test]
    fn a_sweep_in_a_slot_already_claimed_is_covered_by_that_broadcast() {
        let t = TestServices::new();
        let s = site("a");
        t.set_time(20_100);
        join(&t, &s, 1);
        let change = schedule(&t.services(), &s).expect("won");
        let sweep = sweep_due(&t.services(), &s).expect("won");
        assert!(matches!(
            run(&t.services(), &change),
            Ok(Outcome::Counted(_))
        ));
        assert_eq!(run(&t.services(), &sweep), Ok(Outcome::Lost));
    }

    /// A publisher that fails while `down` is set.
    struct Flaky {
        down: std::cell::Cell<bool>,
        sent: std::cell::Cell<u32>,
    }

    impl Publisher for Flaky {
        fn publish(&self, _items: &[PublishItem]) -> Result<(), PublishError> {
            if self.down.get() {
                return Err(PublishError::Unreachable("down".into()));
            }
            self.sent.set(self.sent.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn after_a_failed_publish_the_next_sweep_publishes_again() {
        let t = TestServices::new();
        let s = site("a");
        let flaky = Flaky {
            down: std::cell::Cell::new(true),
            sent: std::cell::Cell::new(0),
        };
        let mut services = t.services();
        services.publisher = &flaky;
        t.set_time(0);
        join(&t, &s, 1);
        let plan = schedule(&services, &s).expect("won");
        let failed = counted(run(&services, &plan));
        assert!(matches!(failed.publish, Some(Err(_))));
        flaky.down.set(false);
        t.set_time(12_000);
        let sweep = sweep_due(&services, &s).expect("won");
        assert_eq!(counted(run(&services, &sweep)).publish, Some(Ok(())));
        assert_eq!(flaky.sent.get(), 1);
    }

    #[test]
    fn only_slots_ending_in_a_new_second_fold_visits() {
        let config = Config::default();
        let plan = |slot_end_ms| Plan {
            site: site("a"),
            slot_end_ms,
            reason: Reason::Change,
        };
        assert!(plan(11_000).folds(&config));
        assert!(!plan(11_500).folds(&config));
    }
}
