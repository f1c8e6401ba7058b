//! A small run of the load generator, so it cannot rot: tens of clients, a few seconds.

use std::collections::BTreeSet;

use liveuser_bench::{report, scenarios};
use liveuser_testkit::stack::Stack;

#[test]
fn the_generator_drives_a_small_wave_and_churn_and_reports_them() {
    let stack = Stack::start();
    let ws = stack.fanout_ws_origin();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let wave = runtime.block_on(scenarios::wave(&stack, &ws, "smoke", 30));
    assert_eq!(wave.stopped, None);
    assert_eq!(
        wave.settle.count, 30,
        "every client was told the exact count"
    );
    assert_eq!(wave.leave_settle.count, 27);
    assert_eq!(wave.open.requests, 30);
    // An OPEN writes a key for each window its presence reaches: two, or three.
    assert!(wave.open.max_writes <= 3 && wave.open.kv_lists == 0.0);
    let slots = scenarios::broadcast_slots(&stack, "smoke", 0);
    let distinct: BTreeSet<u64> = slots.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        slots.len(),
        "one broadcast per slot at most"
    );

    let churn = runtime.block_on(scenarios::churn(&stack, &ws, 5, 10, 2));
    assert!(churn.exact_after);
    assert!(churn.joins >= 8);
    assert!(churn.max_in_a_second <= 2);

    let costs = scenarios::costs(&stack, 5);
    assert_eq!(costs.beat_ops.requests, 10);
    assert!(costs.beat_ops.max_writes <= 1);
    assert!(costs.beat_ops.kv_writes > 0.0, "the due heartbeats wrote");

    let first = runtime
        .block_on(scenarios::first_count(&ws, 10, 3, false))
        .expect("first counts");
    assert_eq!((first.first.count, first.never_exact), (3, 0));

    let run = report::Run {
        machine: "test".into(),
        date: "today".into(),
        waves: vec![wave],
        churn: vec![churn],
        first_counts: vec![first],
        costs,
        wasm_bytes: 1,
        package_bytes: 1,
        loader_bytes: 1,
        loader_gzip_bytes: 1,
    };
    let md = report::markdown(&run);
    assert!(md.contains("| 30 |"));
    assert!(md.contains("| settled | 10 | 3 |"));
    assert!(report::svg(&run.waves).starts_with("<svg"));
}
