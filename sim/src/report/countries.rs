//! What readers by country cost: the 100,000-reader run, whose readers carry their POP's
//! country, against the same audience without countries (`large-100k-no-countries`, shorter:
//! every figure compared is per reader-hour, per heartbeat or per broadcast).

use std::fmt::Write;

use super::figures::{figures, Figures};
use crate::scenarios::Run;

/// The run with countries and the run without.
pub const WITH: &str = "large-100k";
pub const WITHOUT: &str = "large-100k-no-countries";

/// One side of the comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    /// KV writes, deletes and list pages per reader-hour (steady phase).
    pub kv_per_reader_hour: f64,
    pub lookups_per_reader_hour: f64,
    /// KV writes per heartbeat (a socket's message).
    pub writes_per_heartbeat: f64,
    pub list_pages_per_count: f64,
    /// CPU (ms, as wasm) of a broadcast: its own execution and its census shares'.
    pub cpu_per_broadcast_ms: f64,
    /// CPU (ms, as wasm) of a socket message's execution (heartbeats, nearly all).
    pub cpu_per_heartbeat_ms: f64,
}

fn side(run: &Run) -> Side {
    let steady: Figures = run
        .phases
        .get(1)
        .map(|(_, a, b)| figures(run, *a, *b))
        .unwrap_or_default();
    let m = run.world.metrics.borrow();
    let (mut heartbeats, mut writes) = (0u64, 0u64);
    for ((kind, _), c) in &m.cost {
        if *kind == "heartbeat" {
            heartbeats += c.requests;
            writes += c.ops.inserts;
        }
    }
    let cpu = |kind: &str| m.cpu_by_kind.get(kind).copied().unwrap_or_default();
    let (broadcasts, broadcast_ms) = cpu("broadcast count");
    let (_, share_ms) = cpu("census share");
    let (beats, beat_ms) = cpu("socket message");
    Side {
        kv_per_reader_hour: steady.kv_class_a_per_reader_hour(),
        lookups_per_reader_hour: steady.per_reader_hour(steady.kv.lookups),
        writes_per_heartbeat: writes as f64 / heartbeats.max(1) as f64,
        list_pages_per_count: steady.list_pages_per_count,
        cpu_per_broadcast_ms: (broadcast_ms + share_ms) / broadcasts.max(1) as f64,
        cpu_per_heartbeat_ms: beat_ms / beats.max(1) as f64,
    }
}

/// The comparison, when both runs were made.
pub fn of(runs: &[Run]) -> Option<(Side, Side)> {
    let with = runs.iter().find(|r| r.key == WITH)?;
    let without = runs.iter().find(|r| r.key == WITHOUT)?;
    Some((side(with), side(without)))
}

fn change(with: f64, without: f64) -> f64 {
    if without > 0.0 {
        (with / without - 1.0) * 100.0
    } else {
        0.0
    }
}

/// What countries add, in words: the verdict's measured column.
pub fn measured(with: &Side, without: &Side) -> String {
    format!(
        "KV writes per heartbeat {:.3} with, {:.3} without; KV writes, deletes and lists per reader-hour {:+.1}%; list pages per count {:+.1}%; CPU per broadcast (its shares included) {:+.1}%",
        with.writes_per_heartbeat,
        without.writes_per_heartbeat,
        change(with.kv_per_reader_hour, without.kv_per_reader_hour),
        change(with.list_pages_per_count, without.list_pages_per_count),
        change(with.cpu_per_broadcast_ms, without.cpu_per_broadcast_ms),
    )
}

/// Nothing per heartbeat (no more writes), and under 5% per broadcast in what it pays for
/// (list pages). Its CPU is shown beside, not judged: two runs on a shared machine differ by
/// a few percent of noise either way, and Compute bills executions, not their CPU.
pub fn holds(with: &Side, without: &Side) -> bool {
    with.writes_per_heartbeat <= without.writes_per_heartbeat * 1.01
        && change(with.list_pages_per_count, without.list_pages_per_count) < 5.0
}

/// The section of SIMULATION.md: the two runs side by side.
pub fn section(runs: &[Run]) -> String {
    let Some((with, without)) = of(runs) else {
        return String::new();
    };
    let mut md = String::from(
        "\n## What readers by country cost\n\nEach reader's country (from Fastly's geolocation at the handoff) rides its presence keys as its page does: no key, write or lookup of its own. Every scenario above places each POP's readers in a country of its own. The same 100,000-reader site without countries (`--countries off`, 15 minutes steady) shows what they add:\n\n| per | with countries | without | change |\n|---|---|---|---|\n",
    );
    let rows: [(&str, f64, f64, usize); 6] = [
        (
            "heartbeat: KV writes",
            with.writes_per_heartbeat,
            without.writes_per_heartbeat,
            3,
        ),
        (
            "socket message (a heartbeat, nearly always): CPU ms (as wasm)",
            with.cpu_per_heartbeat_ms,
            without.cpu_per_heartbeat_ms,
            3,
        ),
        (
            "reader-hour: KV writes, deletes and lists",
            with.kv_per_reader_hour,
            without.kv_per_reader_hour,
            1,
        ),
        (
            "reader-hour: KV lookups",
            with.lookups_per_reader_hour,
            without.lookups_per_reader_hour,
            2,
        ),
        (
            "broadcast: list pages",
            with.list_pages_per_count,
            without.list_pages_per_count,
            2,
        ),
        (
            "broadcast: CPU ms (as wasm), its census shares included",
            with.cpu_per_broadcast_ms,
            without.cpu_per_broadcast_ms,
            2,
        ),
    ];
    for (what, a, b, digits) in rows {
        let _ = writeln!(
            md,
            "| {what} | {a:.digits$} | {b:.digits$} | {:+.1}% |",
            change(a, b)
        );
    }
    md.push_str("\nCPU is measured on the machine that ran the simulation, beside the other scenarios: a few percent either way is its noise. The counting itself, alone: `cargo test --release --lib census_cost -- --ignored --nocapture` times keys with and without a country, alternated.\n");
    md
}
