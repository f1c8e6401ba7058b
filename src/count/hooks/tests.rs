//! A site's hooks checked against its counts, as broadcasts in several POPs run them.

use super::*;
use crate::platform::clock::Clock;
use crate::platform::testing::{MemoryCache, TestServices};
use crate::wire::webhook::verify;

fn site() -> SiteId {
    SiteId::parse("shop").expect("site")
}

/// A site with one hook: `online.above` at 3, `online.below` under 2.
fn with_hook() -> (TestServices, Hook) {
    let t = TestServices::new();
    t.set_time(1_800_000_000_000);
    let hook = settings::add(
        &t.services(),
        &site(),
        &NewHook {
            url: "https://hooks.example/live".into(),
            above: 3,
            hysteresis: 1,
        },
    )
    .expect("added");
    (t, hook)
}

/// The bodies delivered so far, checked against the hook's secret.
fn delivered(t: &TestServices, hook: &Hook) -> Vec<serde_json::Value> {
    t.outbound
        .sent
        .borrow()
        .iter()
        .map(|req| {
            let header = req.headers()["liveuser-signature"].to_str().expect("ascii");
            let now = t.clock.now_secs();
            assert_eq!(
                verify(hook.secret.as_bytes(), header, req.body(), now, 300),
                Ok(())
            );
            serde_json::from_slice(req.body()).expect("json")
        })
        .collect()
}

#[test]
fn counts_crossing_the_threshold_deliver_one_event_per_crossing() {
    let (t, hook) = with_hook();
    let mut slot = 1_800_000_000_500;
    for count in [1, 2, 3, 4, 3, 2, 3, 1, 0, 5] {
        // Counted after the slot's end and the settle time, as a broadcast does.
        t.set_time(slot + 320);
        after_count(&t.services(), &site(), count, slot);
        slot += 500;
    }
    let events: Vec<(String, u64, u64)> = delivered(&t, &hook)
        .iter()
        .map(|b| {
            (
                b["type"].as_str().unwrap_or_default().to_string(),
                b["count"].as_u64().unwrap_or_default(),
                b["crossing"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("online.above".into(), 3, 1),
            ("online.below".into(), 1, 2),
            ("online.above".into(), 5, 3)
        ]
    );
    let first = &delivered(&t, &hook)[0];
    assert_eq!(first["id"], format!("{}.1", hook.id));
    assert_eq!(first["site"], "shop");
    assert_eq!(first["threshold"], 3);
    assert_eq!(first["at"], "2027-01-15T08:00:01.500Z");
    let lines: Vec<String> = t
        .log
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("liveuser webhook "))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!(
            "liveuser webhook site=shop hook={} event=online.above crossing=1 count=3 attempts=1 result=delivered status=204",
            hook.id
        )
    );
}

#[test]
fn two_pops_counting_the_same_crossing_send_it_once() {
    let (t, hook) = with_hook();
    let other_pop = MemoryCache::default();
    other_pop.clock_ms.set(t.clock.now_ms());
    // Two executions in two POPs see the count cross (a slot's broadcast and a sweep that
    // overlapped it): one claim wins.
    after_count(&t.services(), &site(), 4, 1_800_000_000_500);
    after_count(
        &t.services_with_cache(&other_pop),
        &site(),
        4,
        1_800_000_001_000,
    );
    assert_eq!(delivered(&t, &hook).len(), 1);
    // Their reads of the state both come before either claim (the store's copies lag).
    let (t, hook) = with_hook();
    let a = crossing::read(&t.kv, &site(), &hook.id).expect("read");
    let b = crossing::read(&t.kv, &site(), &hook.id).expect("read");
    let crossed = crossing::next(&a, &hook, 4, t.clock.now_ms()).expect("crossing");
    let won = [a, b].map(|seen| {
        crossing::claim(&t.kv, &site(), &hook.id, &seen, crossed, b"{}").expect("claim")
    });
    assert_eq!(won, [true, false]);
}

#[test]
fn a_receiver_that_is_down_gets_three_attempts_and_the_count_moves_on() {
    let (t, hook) = with_hook();
    t.outbound.answers.borrow_mut().extend([
        Err(crate::platform::outbound::OutboundError(
            "connect timeout".into(),
        )),
        Ok(502),
        Ok(503),
    ]);
    after_count(&t.services(), &site(), 3, 1_800_000_000_500);
    assert_eq!(t.outbound.sent.borrow().len(), 3);
    assert!(t.log.lines().iter().any(|l| l.ends_with(&format!(
        "hook={} event=online.above crossing=1 count=3 attempts=3 result=failed error=\"status 503\"",
        hook.id
    ))));
    // The crossing is not sent again by the next count: it was this execution's to deliver.
    after_count(&t.services(), &site(), 3, 1_800_000_001_000);
    assert_eq!(t.outbound.sent.borrow().len(), 3);
}

#[test]
fn a_site_without_hooks_costs_a_cache_lookup_and_a_store_that_fails_sends_nothing() {
    let t = TestServices::new();
    after_count(&t.services(), &site(), 10, 500);
    let before = t.kv.len();
    let counting = crate::platform::kv::CountingKv::new(&t.kv);
    let services = Services {
        kv: &counting,
        ..t.services()
    };
    after_count(&services, &site(), 10, 1_000);
    assert_eq!(counting.counts().lookup, 0, "read once per POP a while");
    assert_eq!(t.kv.len(), before);
    let down = crate::platform::testing::FailingKv;
    let (t, _) = with_hook();
    let fresh_pop = MemoryCache::default();
    let services = Services {
        kv: &down,
        ..t.services_with_cache(&fresh_pop)
    };
    after_count(&services, &site(), 10, 1_000);
    assert!(t.outbound.sent.borrow().is_empty());
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l.starts_with("liveuser webhook-check-failed site=shop")));
}

#[test]
fn a_removed_hook_is_checked_no_more() {
    let (t, hook) = with_hook();
    after_count(&t.services(), &site(), 3, 1_800_000_000_500);
    assert_eq!(remove(&t.services(), &site(), &hook.id), Ok(true));
    assert_eq!(remove(&t.services(), &site(), &hook.id), Ok(false));
    after_count(&t.services(), &site(), 0, 1_800_000_001_000);
    assert_eq!(t.outbound.sent.borrow().len(), 1);
    assert!(!t.kv.keys().iter().any(|k| k.starts_with("hook-state/")));
}
