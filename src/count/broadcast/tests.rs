//! Broadcasts' tests, over the fake host services: claims across POPs, counts, sweeps,
//! snapshots, history and what is published.

use super::*;
use crate::count::broadcast::finish::busiest_pages;
use crate::count::presence::new_id_from;
use crate::count::snapshot::{self, Snapshot};
use crate::count::{page, peak, presence};
use crate::platform::config::Config;
use crate::platform::kv::KvStore;
use crate::platform::publisher::Publisher;
use crate::platform::publisher::{PublishError, PublishItem};
use crate::platform::testing::{MemoryCache, TestServices};
use crate::wire::site::SiteId;

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
        page::id(&t.secrets, &s, "/docs").expect("id"),
        page::id(&t.secrets, &s, "/blog").expect("id"),
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
            r#"{"type":"update","count":4,"pageCount":2,"slot":500}"#.to_string(),
        ),
        (
            format!("page:a:{blog}"),
            r#"{"type":"update","count":4,"pageCount":1,"slot":500}"#.to_string(),
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
    presence::leave(&t.kv, &t.clock, &t.config, &s, &blogger).expect("leave");
    let plan = schedule(&t.services(), &s).expect("won");
    counted(run(&t.services(), &plan));
    let mut got = page_items(&t);
    got.sort();
    let mut expected = vec![
        (
            format!("page:a:{docs}"),
            r#"{"type":"update","count":3,"pageCount":2,"slot":1000}"#.to_string(),
        ),
        (
            format!("page:a:{blog}"),
            r#"{"type":"update","count":3,"pageCount":0,"slot":1000}"#.to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn below_the_privacy_floor_no_broadcast_carries_the_exact_count() {
    let t = TestServices::new();
    crate::count::registry::register(&t, "a", r#"{"minCount": 3}"#);
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
        r#"{"type":"update","count":3,"belowMin":true,"slot":500}"#
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
    assert_eq!(
        last,
        serde_json::json!({"type": "update", "count": 200, "slot": 21000})
    );
    assert_eq!(published[2].channel, "site:a");
    assert_eq!(published[2].id.as_deref(), Some("count-a-21000"));
    let with_totals: serde_json::Value = serde_json::from_str(&published[3].content).expect("json");
    assert_eq!(
        with_totals,
        serde_json::json!({"type": "update", "count": 200, "totalCount": 0, "slot": 21000})
    );
    assert_eq!(published[3].channel, "site-totals:a");
    // The owner's dashboard heard of each, on its own channel, in the same publishes.
    let dashboards = t.publisher.dashboards.borrow();
    let last: serde_json::Value =
        serde_json::from_str(&dashboards.last().expect("told").content).expect("json");
    assert_eq!(
        dashboards.last().map(|d| d.channel.as_str()),
        Some("site-dashboard:a")
    );
    assert_eq!(
        (last["type"].as_str(), last["count"].as_u64()),
        (Some("dashboard"), Some(200))
    );
    assert_eq!(last["slot"], 21000);
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

    // Connection 2 vanished (no event); connection 1 keeps its presence fresh. Connection
    // 2's keys reach the window ending at 60 s (it joined at 0 s with 45 s of presence).
    let lease = presence::Lease {
        id: new_id_from([0, 1]),
        windows: vec![0, 1],
        page: None,
        country: None,
    };
    t.set_time(30_000);
    presence::refresh(&t.kv, &t.config, &s, &lease, 30_000).expect("refresh");
    t.set_time(55_000);
    let sweep = sweep_due(&t.services(), &s).expect("next period");
    let still = counted(run(&t.services(), &sweep));
    assert_eq!(still.count, 2, "counted until its last window ends");
    t.set_time(60_100);
    let sweep = sweep_due(&t.services(), &s).expect("next period");
    let noticed = counted(run(&t.services(), &sweep));
    assert_eq!(noticed.count, 1);
    assert_eq!(noticed.publish, Some(Ok(())));
    // Nothing to delete: the ended window is never listed again, its keys lapse by TTL.
    assert_eq!(noticed.deleted, 0);
    assert!(t
        .kv
        .lookup(&presence::key(&s, &leaving.id, 1))
        .expect("lookup")
        .is_some());
    assert_eq!(noticed.lists, 1, "one window listed, one page");
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
    // In one slot a page joins here (and is shown a first count from the snapshot) and a
    // reader leaves elsewhere; this POP's sweep wins the slot.
    t.set_time(20_000);
    join(&t, &s, 3);
    crate::count::snapshot::note_join(&t.cache, &s, 20_000);
    presence::leave(&t.kv, &t.clock, &t.config, &s, &leaving).expect("leave");
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
    // The count, then the total once its visits are read: two requests.
    assert_eq!(flaky.sent.get(), 2);
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

#[test]
fn a_won_slot_whose_execution_died_is_counted_by_the_next_request_of_its_pop() {
    let t = TestServices::new();
    let s = site("a");
    t.set_time(0);
    join(&t, &s, 1);
    let plan = schedule(&t.services(), &s).expect("won in the POP");
    assert!(
        claim(&t.services(), &plan).expect("claim"),
        "won across POPs"
    );
    // Its execution dies here: Compute stopped it before it counted. Nothing is published,
    // and within the slot and its count's time nothing is owed yet.
    t.set_time(plan.slot_end_ms + 200);
    assert_eq!(
        sweep_due(&t.services(), &s).map(|p| p.reason),
        Some(Reason::Sweep { period: 0 })
    );
    assert!(t.publisher.published.borrow().is_empty());
    // Two slots after it should have counted, the next heartbeat of the POP plans a count of
    // its own slot (a change, claimed afresh), once.
    t.set_time(plan.slot_end_ms + 1_400);
    let again = sweep_due(&t.services(), &s).expect("owed");
    assert_eq!(again.reason, Reason::Change);
    assert!(again.slot_end_ms > plan.slot_end_ms);
    assert_eq!(sweep_due(&t.services(), &s), None, "planned once");
    counted(run(&t.services(), &again));
    assert_eq!(
        t.publisher.published.borrow().len(),
        2,
        "the count went out"
    );

    // A slot counted in time owes nothing.
    t.set_time(20_000);
    join(&t, &s, 2);
    let plan = schedule(&t.services(), &s).expect("won");
    counted(run(&t.services(), &plan));
    t.set_time(plan.slot_end_ms + 5_000);
    assert!(
        matches!(sweep_due(&t.services(), &s), Some(p) if p.reason != Reason::Change),
        "a sweep, not a recovery"
    );
}

#[test]
fn a_large_count_that_moves_within_what_pages_show_is_stored_but_not_sent() {
    let mut t = TestServices::new();
    // Counted in one execution here, as by a service with no secret to sign census requests
    // with (the census's split has tests of its own).
    t.secrets.clear();
    let s = site("a");
    // 1,200 readers, counted in the slot ending at 1.0 s: pages are told "1.2K".
    t.set_time(500);
    for n in 0..1_200 {
        join(&t, &s, n);
    }
    let site_items = |t: &TestServices| {
        t.publisher
            .published
            .borrow()
            .iter()
            .filter(|i| i.channel == s.channel())
            .count()
    };
    counted(run(
        &t.services(),
        &schedule(&t.services(), &s).expect("won"),
    ));
    assert_eq!(site_items(&t), 1);
    // Ten more in the next slot: still "1.2K". Nothing is sent; the snapshot has 1,210.
    t.set_time(1_100);
    for n in 1_200..1_210 {
        join(&t, &s, n);
    }
    let quiet = counted(run(
        &t.services(),
        &schedule(&t.services(), &s).expect("won"),
    ));
    assert_eq!((quiet.count, quiet.publish.clone()), (1_210, None));
    assert_eq!(site_items(&t), 1);
    let stored = snapshot::read(&t.kv, &t.config, &s)
        .expect("read")
        .expect("stored");
    assert_eq!(stored.count, 1_210);
    // The owner's dashboard shows it exactly: it was told alone.
    let dashboard = t
        .publisher
        .dashboards
        .borrow()
        .last()
        .cloned()
        .expect("told");
    let view: serde_json::Value = serde_json::from_str(&dashboard.content).expect("json");
    assert_eq!(view["count"], 1_210);
    // Fifty more: "1.3K", sent at once.
    t.set_time(1_600);
    for n in 1_210..1_260 {
        join(&t, &s, n);
    }
    let told = counted(run(
        &t.services(),
        &schedule(&t.services(), &s).expect("won"),
    ));
    assert_eq!((told.count, told.publish.clone()), (1_260, Some(Ok(()))));
    assert_eq!(site_items(&t), 2);
    // The first slot after a 10 s boundary tells every channel, changed or not.
    t.set_time(9_600);
    join(&t, &s, 2_000);
    let restated = counted(run(
        &t.services(),
        &schedule(&t.services(), &s).expect("won"),
    ));
    assert_eq!(restated.publish, Some(Ok(())));
    assert_eq!(site_items(&t), 3);
}

#[test]
fn every_key_a_site_leaves_in_the_store_expires() {
    // An invented site id, read and written a few times, leaves no key for good: presence,
    // visits, snapshots, the tally and history each live a bounded time after their last write.
    let t = TestServices::new();
    let s = site("invented");
    t.set_time(60_000);
    join(&t, &s, 1);
    assert!(crate::count::visits::count_visit(
        &t.services(),
        "ws",
        &s,
        None
    ));
    for n in 0..4 {
        t.set_time(61_000 + n * 61_000);
        join(&t, &s, 2 + n);
        if let Some(plan) = schedule(&t.services(), &s) {
            t.set_time(plan.slot_end_ms + 1_000);
            counted(run(&t.services(), &plan));
        }
    }
    crate::count::totals::set(&t.kv, &t.clock, &s, 5).expect("seed");
    let keys = t.kv.keys();
    for kind in ["/p/", "history/", "snapshot/", "total/"] {
        assert!(keys.iter().any(|k| k.contains(kind)), "{kind} in {keys:?}");
    }
    assert_eq!(t.kv.keys_without_ttl(), Vec::<String>::new());
    assert_eq!(
        t.kv.ttl_of("total/invented/tally"),
        Some(crate::count::totals::TALLY_TTL_SECS)
    );
    let snapshot_ttls: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with("snapshot/"))
        .map(|k| t.kv.ttl_of(k))
        .collect();
    assert!(snapshot_ttls
        .iter()
        .all(|ttl| *ttl == Some(snapshot::TTL_SECS)));
}
