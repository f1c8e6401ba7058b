//! `liveuser-reliability`: measures every reliability figure and writes RELIABILITY.md.
//! `scripts/reliability` runs it with the full sizes; flags make a shorter run.

use std::time::Duration;

use liveuser_reliability::report::{self, Run};
use liveuser_reliability::{attacks, census_forgery, forgery, inputs, scenarios};

struct Options {
    inputs: u64,
    forgeries: u64,
    seed: u64,
    stack: bool,
    hold_minutes: u64,
    out: std::path::PathBuf,
}

const USAGE: &str = "usage: liveuser-reliability [--inputs N] [--forgeries N] [--seed N] \
                     [--hold-minutes N] [--no-stack] [--out DIR]";

fn options() -> Result<Options, String> {
    let mut o = Options {
        inputs: 1_000_000,
        forgeries: 10_000,
        seed: 2026,
        stack: true,
        hold_minutes: 10,
        out: std::path::PathBuf::from("docs"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| {
            args.next()
                .and_then(|v| v.replace('_', "").parse::<u64>().ok())
                .ok_or(format!("{name} takes a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--inputs" => o.inputs = number("--inputs")?,
            "--forgeries" => o.forgeries = number("--forgeries")?,
            "--seed" => o.seed = number("--seed")?,
            "--hold-minutes" => o.hold_minutes = number("--hold-minutes")?,
            "--no-stack" => o.stack = false,
            "--out" => o.out = args.next().ok_or(USAGE)?.into(),
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{cpus} cores, {mem_gib} GiB")
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("liveuser-reliability: {e}");
            std::process::exit(2);
        }
    };
    let step = |what: &str| eprintln!("reliability: {what}");
    step("generated inputs");
    let input_figures = vec![
        inputs::codec(o.inputs, o.seed),
        inputs::client_messages(o.inputs, o.seed + 1),
        inputs::grip_sig(o.inputs, o.seed + 2),
        inputs::loader_params(o.inputs, o.seed + 3),
    ];
    for f in &input_figures {
        eprintln!(
            "reliability:   {}: {} inputs, {} panics, {} violations",
            f.target, f.inputs, f.panics, f.violations
        );
    }
    step("forged signatures");
    let forgery = forgery::forgeries(o.forgeries, o.seed);
    step("forged census requests");
    let census_forgery = census_forgery::census_forgeries(o.forgeries, o.seed);
    let mut run = Run {
        date: liveuser_edge::platform::clock::iso8601(
            liveuser_edge::platform::clock::Clock::now_ms(
                &liveuser_edge::platform::clock::SystemClock,
            ),
        )[..10]
            .to_string(),
        machine: machine(),
        seed: o.seed,
        inputs: input_figures,
        forgery,
        census_forgery,
        visits: None,
        killed: None,
        held: None,
        publish_down: None,
        flood: None,
        attacks: None,
    };
    if o.stack {
        step("10,000 first visits");
        run.visits = Some(scenarios::visits(10_000, 2_500));
        step("Pushpin killed under 1,000 sockets");
        run.killed = Some(scenarios::pushpin_killed(1_000, 30));
        step("2,000 sockets held");
        run.held = Some(scenarios::held(
            2_000,
            Duration::from_secs(60 * o.hold_minutes),
            30,
        ));
        step("publish target down 60 s");
        run.publish_down = Some(scenarios::publish_down(500, Duration::from_secs(60), 30));
        step("a flood from one address");
        run.flood = Some(scenarios::flood(500, 1_000));
        step("attacks");
        run.attacks = Some(attacks::attacks(30));
    }
    let path = o.out.join("RELIABILITY.md");
    if let Err(e) = std::fs::write(&path, report::markdown(&run)) {
        eprintln!("reliability: could not write {}: {e}", path.display());
        std::process::exit(1);
    }
    eprintln!(
        "reliability: wrote {} (overall {})",
        path.display(),
        if run.holds() { "holds" } else { "FAILS" }
    );
    if !run.holds() {
        std::process::exit(1);
    }
}
