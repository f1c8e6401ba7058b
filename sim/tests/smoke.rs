//! A short run of the simulator in the test command: small audiences and minutes instead of
//! hours, but every model part (many POPs, KV lag and limits, Fanout, a POP dying, visits at a
//! popular page's peak) and the same checks the report makes.

use liveuser_edge::platform::config::Config;
use liveuser_sim::params::Params;
use liveuser_sim::report::{self, figures};
use liveuser_sim::scenarios;

fn quick() -> Params {
    let mut p = Params::default();
    p.set("scale", "0.05").expect("scale");
    p.set("hours", "0.25").expect("hours");
    p
}

#[test]
fn many_pops_a_pop_dying_and_a_visit_peak_hold_every_bound() {
    let params = quick();
    let config = Config::default();
    let runs = vec![
        scenarios::steady("steady-50pops", &params, &config, 50, 20_000.0),
        scenarios::pop_death(&params, &config),
        scenarios::visits(&params, &config, 500.0),
        scenarios::large(&params, &config, "large-100k", 100_000.0, 15),
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
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.holds)
        .map(|v| v.requirement.as_str())
        .collect();
    assert!(failed.is_empty(), "failed: {failed:?}");
    // The runs did real work: readers joined and left, broadcasts went out.
    let steady = figures(&runs[0], 0, 15 * 60 * 1_000_000);
    assert!(steady.mean_open > 900.0, "{}", steady.mean_open);
    assert!(steady.broadcasts > 100);
}
