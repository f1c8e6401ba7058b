//! One scenario's section of the report: a table of its figures with a column per phase, the
//! KV operations per request of each kind, and what else the run noted.

use std::fmt::Write;

use super::figures::{figures, opt_ms, Figures};
use crate::clock::SEC;
use crate::kv::Ops;
use crate::params::Params;
use crate::scenarios::Run;

/// How a row's cell is written from a phase's figures.
type Cell = fn(&Figures) -> String;

/// The rows of a scenario's table: one column per phase.
fn table(md: &mut String, run: &Run) {
    let figs: Vec<Figures> = run
        .phases
        .iter()
        .map(|(_, a, b)| figures(run, *a, *b))
        .collect();
    let _ = write!(md, "| figure |");
    for (label, _, _) in &run.phases {
        let _ = write!(md, " {label} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in &run.phases {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    let rows: Vec<(&str, Cell)> = vec![
        (
            "sockets open (mean of minute samples)",
            (|f| format!("{:.0}", f.mean_open)),
        ),
        (
            "KV lookups / s",
            (|f| format!("{:.1}", f.per_second(f.kv.lookups))),
        ),
        (
            "KV writes / s (of which lost a condition / got 429)",
            (|f| {
                format!(
                    "{:.1} ({:.1} / {:.1})",
                    f.per_second(f.kv.inserts),
                    f.per_second(f.kv.insert_conflicts),
                    f.per_second(f.kv.rate_limited)
                )
            }),
        ),
        (
            "KV deletes / s (of keys already gone)",
            (|f| {
                format!(
                    "{:.1} ({:.2})",
                    f.per_second(f.kv.deletes),
                    f.per_second(f.kv.deletes_of_gone)
                )
            }),
        ),
        (
            "KV list pages / s",
            (|f| format!("{:.2}", f.per_second(f.kv.list_pages))),
        ),
        (
            "keys listed per count (mean / max)",
            (|f| {
                format!(
                    "{:.0} / {}",
                    f.keys_listed_per_count, f.max_keys_listed_per_count
                )
            }),
        ),
        (
            "list pages per count",
            (|f| format!("{:.1}", f.list_pages_per_count)),
        ),
        (
            "presence keys listed per open socket",
            (|f| format!("{:.2}", f.listed_keys_per_open)),
        ),
        (
            "most keys alive for one connection",
            (|f| f.max_keys_per_connection.to_string()),
        ),
        (
            "broadcasts / s, all POPs (mean / most slots in any second)",
            (|f| {
                format!(
                    "{:.2} / {}",
                    f.per_second(f.broadcasts as u64),
                    f.max_broadcasts_in_a_second
                )
            }),
        ),
        (
            "messages delivered / s",
            (|f| format!("{:.0}", f.delivered_per_second)),
        ),
        (
            "settle after a change p50 / p99 / max ms",
            (|f| {
                format!(
                    "{} / {} / {}",
                    opt_ms(f.settle_p50_ms),
                    opt_ms(f.settle_p99_ms),
                    opt_ms(f.settle_max_ms)
                )
            }),
        ),
        (
            "count error once settled (largest)",
            (|f| {
                f.settled_error
                    .map_or("never settled".into(), |e| e.to_string())
            }),
        ),
        (
            "count error at count time (largest)",
            (|f| f.count_error.to_string()),
        ),
        (
            "Compute executions (stopped by a limit / over half of a limit)",
            (|f| {
                format!(
                    "{} ({} / {})",
                    f.executions.executions, f.executions.killed, f.executions.over_half
                )
            }),
        ),
        (
            "one execution at most: CPU ms (as wasm) / heap MB / wall s / backend requests",
            (|f| {
                let w = f.executions.worst;
                format!(
                    "{:.1} / {:.1} / {:.1} / {}",
                    w.cpu_ms,
                    w.heap_bytes as f64 / 1e6,
                    w.wall_us as f64 / 1e6,
                    w.backend_requests
                )
            }),
        ),
        (
            "per reader-hour: KV writes, deletes, lists / KV lookups / executions / messages",
            (|f| {
                if f.reader_hours() == 0.0 {
                    return "–".into();
                }
                format!(
                    "{:.0} / {:.0} / {:.0} / {:.0}",
                    f.per_reader_hour(f.kv.inserts + f.kv.deletes + f.kv.list_pages),
                    f.per_reader_hour(f.kv.lookups),
                    f.per_reader_hour(f.executions.executions),
                    f.per_reader_hour(f.delivered)
                )
            }),
        ),
    ];
    for (label, cell) in rows {
        let _ = write!(md, "| {label} |");
        for f in &figs {
            let _ = write!(md, " {} |", cell(f));
        }
        md.push('\n');
    }
}

/// KV operations per request of each kind over the whole run.
fn costs(md: &mut String, run: &Run) {
    let m = run.world.metrics.borrow();
    let mut by_kind: std::collections::BTreeMap<&str, (u64, Ops, u64)> = Default::default();
    for ((kind, _), c) in &m.cost {
        let e = by_kind.entry(kind).or_default();
        e.0 += c.requests;
        e.1.add(&c.ops);
        e.2 = e.2.max(c.max_ops);
    }
    md.push_str("\n| request | count | lookups | writes | deletes | list pages | most KV ops in one |\n|---|---|---|---|---|---|---|\n");
    for (kind, (n, ops, max)) in by_kind {
        let per = |x: u64| x as f64 / n.max(1) as f64;
        let _ = writeln!(
            md,
            "| {kind} | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {max} |",
            per(ops.lookups),
            per(ops.inserts),
            per(ops.deletes),
            per(ops.list_pages)
        );
    }
    md.push_str("\n| execution | count | mean CPU ms (as wasm) |\n|---|---|---|\n");
    for (kind, (n, ms)) in &m.cpu_by_kind {
        let _ = writeln!(md, "| {kind} | {n} | {:.3} |", ms / (*n).max(1) as f64);
    }
}

/// One scenario's section.
pub fn section(run: &Run, params: &Params) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### {}\n", run.title);
    table(&mut md, run);
    costs(&mut md, run);
    let m = run.world.metrics.borrow();
    let _ = writeln!(
        md,
        "\nRefused opens: {}. Sockets the service closed: {}. Changes never covered by a broadcast: {}. Items Fanout dropped as repeats: {}.",
        m.refused_opens,
        m.server_closes,
        m.unsettled(),
        run.world.fanout.borrow().dropped_repeats
    );
    let lines: Vec<String> = m
        .log_lines
        .iter()
        .filter(|(kind, _)| !matches!(kind.as_str(), "request" | "broadcast"))
        .map(|(kind, n)| format!("`{kind}` {n}"))
        .collect();
    let _ = writeln!(
        md,
        "Service log lines other than requests and broadcasts: {}.",
        if lines.is_empty() {
            "none".to_string()
        } else {
            lines.join(", ")
        }
    );
    if let Some(death) = run.pop_death_us {
        let interval = u64::from(run.world.config.heartbeat_interval_secs) * SEC;
        let mut line = String::from(
            "\nPages' count minus sockets open after the POP died (largest over POPs):",
        );
        for k in [0u64, 1, 2, 3] {
            let at = death + k * interval;
            let shown = m
                .phantoms
                .iter()
                .filter(|(t, _)| *t >= at)
                .take(5)
                .map(|(_, p)| *p)
                .max();
            let _ = write!(
                line,
                " {} s: {};",
                k * interval / SEC,
                shown.map_or("–".into(), |p| p.to_string())
            );
        }
        md.push_str(&line);
        md.push('\n');
    }
    for (label, value) in &run.notes {
        let _ = writeln!(md, "- {label}: {value}");
    }
    let _ = params;
    md
}
