//! `liveuser-sim`: runs the scenarios and writes the report.
//!
//!   liveuser-sim [--scenario NAME]... [--out SIMULATION.md] [--plot FILE.svg] [--MODEL-FLAG VALUE]...
//!
//! Scenarios: steady-1pop, steady-50pops, flash-crowd, pop-death, churn, visits (default: all).

use std::time::Instant;

use liveuser_edge::config::Config;
use liveuser_sim::params::Params;
use liveuser_sim::{report, scenarios};

fn main() {
    let mut params = Params::default();
    let mut chosen: Vec<String> = Vec::new();
    let mut out: Option<String> = None;
    let mut plot: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix("--") else {
            fail(&format!("unexpected argument {arg:?}"));
        };
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("--{name} needs a value")));
        match name {
            "scenario" => chosen.push(value),
            "out" => out = Some(value),
            "plot" => plot = Some(value),
            _ => params.set(name, &value).unwrap_or_else(|e| fail(&e)),
        }
    }
    if chosen.is_empty() {
        chosen = [
            "steady-1pop",
            "steady-50pops",
            "flash-crowd",
            "pop-death",
            "churn",
            "visits",
        ]
        .map(String::from)
        .to_vec();
    }
    let config = Config::default();
    let started_all = Instant::now();
    let mut all = Vec::new();
    for name in &chosen {
        let started = Instant::now();
        let runs = match name.as_str() {
            "steady-1pop" => vec![scenarios::steady(
                "steady-1pop",
                &params,
                &config,
                1,
                5_000.0,
            )],
            "steady-50pops" => vec![scenarios::steady(
                "steady-50pops",
                &params,
                &config,
                50,
                20_000.0,
            )],
            "flash-crowd" => vec![scenarios::flash_crowd(&params, &config)],
            "pop-death" => vec![scenarios::pop_death(&params, &config)],
            "churn" => vec![scenarios::churn(&params, &config)],
            "visits" => [16.0, 100.0, 500.0, 1000.0]
                .iter()
                .map(|r| scenarios::visits(&params, &config, *r))
                .collect(),
            other => fail(&format!("unknown scenario {other:?}")),
        };
        eprintln!("sim: {name} took {:.1} s", started.elapsed().as_secs_f64());
        all.extend(runs);
    }
    let took = started_all.elapsed().as_secs_f64();
    let plot_name = plot.as_deref().unwrap_or("sim/over-time.svg");
    let md = report::document(&all, &params, &config, took, plot_name);
    let verdicts = report::verdicts(&all);
    match out {
        Some(path) => std::fs::write(&path, md).unwrap_or_else(|e| fail(&format!("{path}: {e}"))),
        None => print!("{md}"),
    }
    if let Some(path) = plot {
        std::fs::write(&path, report::plot(&all)).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    }
    for v in &verdicts {
        eprintln!(
            "sim: {} {} — {}",
            if v.holds { "holds" } else { "FAILS" },
            v.requirement,
            v.measured
        );
    }
}

fn fail(message: &str) -> ! {
    eprintln!("liveuser-sim: {message}");
    std::process::exit(2)
}
