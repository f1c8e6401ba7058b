//! `liveuser-bench`: runs the standard scenarios on a fresh local stack and writes
//! BENCHMARKS.md and bench/settle-latency.svg. Run it through `scripts/bench`, which builds
//! the release wasm first.
//!
//! Options: `--sizes 100,1000,2500,5000` (wave sizes), `--churn 5,20,50` (joins and leaves per
//! second in the churn scenario), `--out DIR` (where BENCHMARKS.md goes).

use std::io::Write;
use std::path::PathBuf;

use liveuser_bench::report::{self, Run};
use liveuser_bench::scenarios;
use liveuser_testkit::paths::{project_root, wasm_path};
use liveuser_testkit::stack::Stack;

struct Options {
    sizes: Vec<usize>,
    churn: Vec<u32>,
    out: PathBuf,
}

fn list<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    let value = value.ok_or(format!("{flag} needs a value"))?;
    value
        .split(',')
        .map(|n| {
            n.trim()
                .parse::<T>()
                .map_err(|e| format!("{flag} {n}: {e}"))
        })
        .collect()
}

fn options() -> Result<Options, String> {
    let mut opts = Options {
        sizes: vec![100, 1000, 2500, 5000],
        churn: vec![5, 20, 50],
        out: project_root().join("docs"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => opts.sizes = list("--sizes", args.next())?,
            "--churn" => opts.churn = list("--churn", args.next())?,
            "--out" => opts.out = PathBuf::from(args.next().ok_or("--out needs a value")?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(opts)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB")
}

fn loader_sizes(stack: &Stack) -> (usize, usize) {
    let body = stack
        .http(
            "GET",
            "/liveuser.js?siteId=x&enableTotalCount=true",
            &[],
            b"",
        )
        .body;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = gz.write_all(&body);
    let gzipped = gz.finish().map(|v| v.len()).unwrap_or(0);
    (body.len(), gzipped)
}

fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("liveuser-bench: {e}");
            std::process::exit(2);
        }
    };
    let stack = Stack::start();
    let ws = stack.fanout_ws_origin();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");

    eprintln!("bench: per-event costs");
    let costs = scenarios::costs(&stack, 200);
    let mut waves = Vec::new();
    for n in &opts.sizes {
        eprintln!("bench: wave of {n}");
        let wave = runtime.block_on(scenarios::wave(&stack, &ws, &format!("wave-{n}"), *n));
        eprintln!("bench:   {wave:?}");
        let stop = wave.stopped.is_some();
        waves.push(wave);
        if stop {
            break;
        }
    }
    let mut churn = Vec::new();
    for &rate in &opts.churn {
        eprintln!("bench: churn at {rate}/s");
        churn.push(runtime.block_on(scenarios::churn(&stack, &ws, rate, 100, 8)));
    }
    let mut first_counts = Vec::new();
    for burst in [false, true] {
        eprintln!(
            "bench: first counts ({})",
            if burst { "burst" } else { "settled" }
        );
        let newcomers = if burst { 200 } else { 20 };
        match runtime.block_on(scenarios::first_count(&ws, 100, newcomers, burst)) {
            Ok(f) => first_counts.push(f),
            Err(e) => eprintln!("bench:   first counts failed: {e}"),
        }
    }
    let (loader_bytes, loader_gzip_bytes) = loader_sizes(&stack);
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let run = Run {
        machine: machine(),
        date: liveuser_edge::platform::clock::iso8601(
            liveuser_edge::platform::clock::Clock::now_ms(
                &liveuser_edge::platform::clock::SystemClock,
            ),
        )[..10]
            .to_string(),
        waves,
        churn,
        first_counts,
        costs,
        wasm_bytes: size(wasm_path()),
        package_bytes: size(project_root().join("pkg/liveuser-edge.tar.gz")),
        loader_bytes,
        loader_gzip_bytes,
    };
    let svg_dir = opts.out.clone();
    let written = std::fs::create_dir_all(&svg_dir)
        .and_then(|_| std::fs::write(opts.out.join("BENCHMARKS.md"), report::markdown(&run)))
        .and_then(|_| std::fs::write(svg_dir.join("settle-latency.svg"), report::svg(&run.waves)));
    match written {
        Ok(()) => eprintln!("bench: wrote {}", opts.out.join("BENCHMARKS.md").display()),
        Err(e) => {
            eprintln!("bench: could not write the report: {e}");
            std::process::exit(1);
        }
    }
}
