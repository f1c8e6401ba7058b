//! `liveuser-sim`: runs the scenarios and writes the report.
//!
//!   liveuser-sim [--scenario NAME]... [--out SIMULATION.md] [--plot FILE.svg] [--MODEL-FLAG VALUE]...
//!
//! Scenarios: see `--help` (default: all).

use std::time::Instant;

use liveuser_edge::platform::config::Config;
use liveuser_sim::params::Params;
use liveuser_sim::{report, scenarios};

fn main() {
    liveuser_sim::compute::tune_allocator();
    let mut params = Params::default();
    let mut chosen: Vec<String> = Vec::new();
    let mut out: Option<String> = None;
    let mut plot: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            usage();
            return;
        }
        let Some(name) = arg.strip_prefix("--") else {
            fail(&format!("unexpected argument {arg:?} (see --help)"));
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
        chosen = SCENARIOS.map(String::from).to_vec();
    }
    let config = liveuser_sim::scenarios::service_config();
    let started_all = Instant::now();
    // Scenarios are independent worlds: run them on every core, and report them in the
    // order asked.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, Vec<liveuser_sim::scenarios::Run>)>> =
        std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..cores.min(chosen.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(name) = chosen.get(i) else { break };
                let started = Instant::now();
                let runs = run_scenario(name, &params, &config);
                for run in &runs {
                    run.world.shed();
                }
                eprintln!("sim: {name} took {:.1} s", started.elapsed().as_secs_f64());
                results.lock().map(|mut r| r.push((i, runs))).ok();
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let all: Vec<_> = results.into_iter().flat_map(|(_, runs)| runs).collect();
    let took = started_all.elapsed().as_secs_f64();
    // The plot as the report links it: beside the report, by its file name.
    let plot_name = plot.as_deref().unwrap_or("docs/over-time.svg");
    let plot_link = std::path::Path::new(plot_name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(plot_name);
    let md = report::document(&all, &params, &config, took, plot_link);
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

fn run_scenario(name: &str, params: &Params, config: &Config) -> Vec<liveuser_sim::scenarios::Run> {
    match name {
        "steady-1pop" => vec![scenarios::steady("steady-1pop", params, config, 1, 5_000.0)],
        "steady-50pops" => vec![scenarios::steady(
            "steady-50pops",
            params,
            config,
            50,
            20_000.0,
        )],
        "flash-crowd" => vec![scenarios::flash_crowd(params, config)],
        "pop-death" => vec![scenarios::pop_death(params, config)],
        "churn" => vec![scenarios::churn(params, config)],
        "large-20k" => vec![scenarios::large(params, config, "large-20k", 20_000.0, 60)],
        "large-100k" => vec![scenarios::large(
            params,
            config,
            "large-100k",
            100_000.0,
            60,
        )],
        "large-100k-no-countries" => vec![scenarios::large_without_countries(
            params,
            config,
            "large-100k-no-countries",
        )],
        "large-1m" => vec![scenarios::large(
            params,
            config,
            "large-1m",
            1_000_000.0,
            60,
        )],
        "flash-1m" => vec![scenarios::flash_large(
            params,
            config,
            "flash-1m",
            1_000_000.0,
        )],
        "pop-death-1m" => vec![scenarios::pop_death_large(
            params,
            config,
            "pop-death-1m",
            1_000_000.0,
        )],
        "visits" => [16.0, 100.0, 500.0, 1000.0]
            .iter()
            .map(|r| scenarios::visits(params, config, *r))
            .collect(),
        other => fail(&format!("unknown scenario {other:?}")),
    }
}

/// The scenarios, in the order a full run makes them.
/// The longest first, so two cores finish together.
const SCENARIOS: [&str; 12] = [
    "large-1m",
    "pop-death-1m",
    "flash-1m",
    "large-100k",
    "large-100k-no-countries",
    "steady-50pops",
    "large-20k",
    "steady-1pop",
    "flash-crowd",
    "pop-death",
    "churn",
    "visits",
];

fn usage() {
    println!(
        "liveuser-sim [--scenario NAME]... [--out FILE.md] [--plot FILE.svg] [--FLAG VALUE]..."
    );
    println!("scenarios (all by default): {}", SCENARIOS.join(", "));
    println!("model flags (defaults, and why, are in SIMULATION.md):");
    for (name, value, unit, _) in Params::default().table() {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" ({unit})")
        };
        println!("  --{name} {value}{unit}");
    }
}

fn fail(message: &str) -> ! {
    eprintln!("liveuser-sim: {message}");
    std::process::exit(2)
}
