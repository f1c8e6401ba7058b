//! Figures from a run, and the report: `SIMULATION.md` and its plot.

use std::fmt::Write;

use crate::clock::{HOUR, MIN, SEC};
use crate::kv::Ops;
use crate::metrics::Metrics;
use crate::params::Params;
use crate::scenarios::Run;

/// The figures of one phase of a run.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub seconds: f64,
    pub kv: Ops,
    pub broadcasts: usize,
    pub max_broadcasts_in_a_second: u32,
    /// Counts taken (broadcasts and sweeps that won their slot).
    pub counts: usize,
    pub keys_listed_per_count: f64,
    pub max_keys_listed_per_count: u64,
    pub list_pages_per_count: f64,
    pub max_keys_per_connection: u32,
    pub listed_keys_per_open: f64,
    pub mean_open: f64,
    pub delivered_per_second: f64,
    pub settle_p50_ms: Option<f64>,
    pub settle_p99_ms: Option<f64>,
    pub settle_max_ms: Option<f64>,
    /// The largest |shown − designed| when settled (None: never settled in this phase).
    pub settled_error: Option<u64>,
    /// The largest |published − designed at count time|.
    pub count_error: u64,
    /// Joins and leaves the service was told of.
    pub changes: u64,
    /// The mean over counts of ⌈keys listed / 1000⌉: the pages a count needs at the least.
    pub pages_per_full_count: f64,
    /// List pages the counts made.
    pub count_pages: u64,
}

impl Figures {
    pub fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.seconds.max(1.0)
    }

    /// The bound on list pages a second: 2 × ⌈live keys / page⌉ with 1000-key pages.
    pub fn list_page_bound(&self, page: f64) -> f64 {
        2.0 * (self.mean_open * self.listed_keys_per_open.max(1.0) / page)
            .ceil()
            .max(1.0)
    }
}

fn percentile(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

/// The figures of `m` between `from` and `to` (µs since the start).
pub fn figures(run: &Run, from: u64, to: u64) -> Figures {
    let m: &Metrics = &run.world.metrics.borrow();
    let kv = run.world.kv.borrow();
    let mut f = Figures {
        seconds: (to - from) as f64 / SEC as f64,
        ..Figures::default()
    };
    for minute in (from / MIN) as usize..((to / MIN) as usize).min(kv.per_minute.len()) {
        f.kv.add(&kv.per_minute[minute]);
    }
    let in_phase = |t: u64| t >= from && t < to;
    let bs: Vec<_> = m
        .broadcasts
        .iter()
        .filter(|b| in_phase(b.published_us))
        .collect();
    f.broadcasts = bs.len();
    if !bs.is_empty() {
        f.keys_listed_per_count = 0.0;
    }
    // Every count, published or not (a sweep that finds nothing new publishes nothing).
    let counts: Vec<_> = m.counts.iter().filter(|c| in_phase(c.at_us)).collect();
    f.counts = counts.len();
    if !counts.is_empty() {
        let n = counts.len() as f64;
        f.keys_listed_per_count = counts.iter().map(|c| c.keys_listed as f64).sum::<f64>() / n;
        f.list_pages_per_count = counts.iter().map(|c| c.list_pages as f64).sum::<f64>() / n;
        f.pages_per_full_count = counts
            .iter()
            .map(|c| c.keys_listed.div_ceil(1000).max(1) as f64)
            .sum::<f64>()
            / n;
    }
    f.max_keys_listed_per_count = counts.iter().map(|c| c.keys_listed).max().unwrap_or(0);
    f.count_pages = counts.iter().map(|c| c.list_pages).sum();
    f.changes = m.settles.iter().filter(|(t, _)| in_phase(*t)).count() as u64;
    f.count_error = bs.iter().map(|b| b.error).max().unwrap_or(0);
    // Broadcasts by the slot they belong to (publish times jitter across a second boundary).
    let mut per_slot_second: std::collections::BTreeMap<u64, u32> = Default::default();
    for b in &bs {
        *per_slot_second.entry(b.slot_end_ms / 1000).or_default() += 1;
    }
    f.max_broadcasts_in_a_second = per_slot_second.values().copied().max().unwrap_or(0);
    let samples: Vec<_> = m.key_samples.iter().filter(|s| in_phase(s.at_us)).collect();
    f.max_keys_per_connection = samples
        .iter()
        .map(|s| s.max_per_connection)
        .max()
        .unwrap_or(0);
    if !samples.is_empty() {
        f.mean_open = samples.iter().map(|s| s.open as f64).sum::<f64>() / samples.len() as f64;
        f.listed_keys_per_open = samples
            .iter()
            .map(|s| s.listed_keys as f64 / s.open.max(1) as f64)
            .sum::<f64>()
            / samples.len() as f64;
    }
    let delivered: u64 = m
        .delivered_per_minute
        .iter()
        .enumerate()
        .filter(|(i, _)| in_phase(*i as u64 * MIN))
        .map(|(_, n)| *n)
        .sum();
    f.delivered_per_second = f.per_second(delivered);
    let mut settles: Vec<u64> = m
        .settles
        .iter()
        .filter(|(t, _)| in_phase(*t))
        .map(|(_, l)| *l)
        .collect();
    settles.sort_unstable();
    f.settle_p50_ms = percentile(&settles, 0.5);
    f.settle_p99_ms = percentile(&settles, 0.99);
    f.settle_max_ms = settles.last().map(|l| *l as f64 / 1000.0);
    f.settled_error = m
        .settled_error_per_minute
        .iter()
        .enumerate()
        .filter(|(i, _)| in_phase(*i as u64 * MIN))
        .filter_map(|(_, e)| *e)
        .max();
    f
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.0}"))
}

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
            "KV deletes / s",
            (|f| format!("{:.1}", f.per_second(f.kv.deletes))),
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

/// A simple line chart: series of (x, y) points, x in minutes.
pub fn chart(
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y0: f64,
    width: f64,
    height: f64,
) -> String {
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let (left, right, top, bottom) = (70.0, 20.0, 30.0, 40.0);
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
    let x_max = xs.fold(1.0f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let px = |x: f64| left + (width - left - right) * x / x_max;
    let py = |y: f64| y0 + top + (height - top - bottom) * (1.0 - y / y_max);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="{}" font-size="14" font-weight="bold">{title}</text>"#,
        y0 + 18.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        y0 + top,
        width - left - right,
        height - top - bottom
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
            left - 4.0,
            py(y) + 3.0,
            fmt_num(y)
        );
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{:.0}</text>"##,
            px(x_max * i as f64 / 4.0),
            y0 + height - bottom + 14.0,
            x_max * i as f64 / 4.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">minutes</text>"##,
        left + (width - left - right) / 2.0,
        y0 + height - 8.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="12" y="{}" font-size="10" transform="rotate(-90 12 {})" text-anchor="middle">{y_label}</text>"##,
        y0 + height / 2.0,
        y0 + height / 2.0
    );
    for (i, (label, points)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" fill="{color}">{label}</text>"#,
            left + 10.0 + 260.0 * i as f64,
            y0 + top + 14.0
        );
    }
    svg
}

fn fmt_num(y: f64) -> String {
    if y >= 10_000.0 {
        format!("{:.0}K", y / 1000.0)
    } else if y >= 10.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

/// Points of a line: (minutes, value).
pub type Series = Vec<(f64, f64)>;

/// Per-minute series of a run: KV operations a second, and keys listed per count.
pub fn series(run: &Run) -> (Series, Series) {
    let kv = run.world.kv.borrow();
    let ops: Vec<(f64, f64)> = kv
        .per_minute
        .iter()
        .enumerate()
        .skip(2)
        .map(|(i, o)| (i as f64, o.total() as f64 / 60.0))
        .collect();
    let m = run.world.metrics.borrow();
    let mut per_minute: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for b in &m.broadcasts {
        let e = per_minute.entry(b.published_us / MIN).or_default();
        e.0 += b.keys_listed as f64;
        e.1 += 1.0;
    }
    let listed = per_minute
        .into_iter()
        .map(|(min, (sum, n))| (min as f64, sum / n))
        .collect();
    let _ = HOUR;
    (ops, listed)
}

/// One requirement, what was measured for it, and whether it holds.
pub struct Verdict {
    pub requirement: String,
    pub measured: String,
    pub holds: bool,
}

fn find<'a>(runs: &'a [Run], key: &str) -> Option<&'a Run> {
    runs.iter().find(|r| r.key == key)
}

fn ratio(a: f64, b: f64) -> f64 {
    if a == 0.0 && b == 0.0 {
        1.0
    } else {
        b / a.max(f64::MIN_POSITIVE)
    }
}

/// The issue's requirements, checked against the runs that were made.
pub fn verdicts(runs: &[Run]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let presence_runs: Vec<&Run> = runs.iter().filter(|r| r.key != "visits").collect();
    if !presence_runs.is_empty() {
        let most_keys = presence_runs
            .iter()
            .flat_map(|r| r.world.metrics.borrow().key_samples.clone())
            .map(|s| s.max_per_connection)
            .max()
            .unwrap_or(0);
        v.push(Verdict {
            requirement: "keys alive per connection ≤ 2, at every minute of every scenario".into(),
            measured: format!("at most {most_keys}"),
            holds: most_keys <= 2,
        });
        let most_slots = presence_runs
            .iter()
            .map(|r| most_slots_in_a_second(r))
            .max()
            .unwrap_or(0);
        v.push(Verdict {
            requirement: "≤ 2 count broadcasts a second per site, across all POPs".into(),
            measured: format!("at most {most_slots} broadcast slots in any second"),
            holds: most_slots <= 2,
        });
        let heartbeat_lists: u64 = presence_runs
            .iter()
            .flat_map(|r| {
                r.world
                    .metrics
                    .borrow()
                    .cost
                    .iter()
                    .filter(|((k, _), _)| *k == "heartbeat")
                    .map(|(_, c)| c.ops.list_pages)
                    .collect::<Vec<_>>()
            })
            .sum();
        v.push(Verdict {
            requirement: "no listing per heartbeat (vanished connections found by one sweep per site)".into(),
            measured: format!("{heartbeat_lists} list pages made by heartbeats"),
            holds: heartbeat_lists == 0,
        });
        let repeats: u64 = presence_runs
            .iter()
            .map(|r| r.world.fanout.borrow().dropped_repeats)
            .sum();
        v.push(Verdict {
            requirement: "a fresher count for a slot is never dropped as a repeat".into(),
            measured: format!("{repeats} items dropped by Fanout as repeats"),
            holds: repeats == 0,
        });
    }
    if let Some(run) = find(runs, "steady-50pops") {
        let (_, a, b) = &run.phases[0];
        let (_, c, d) = &run.phases[1];
        let first = figures(run, *a, *b);
        let last = figures(run, *c, *d);
        let p99 = first
            .settle_p99_ms
            .unwrap_or(f64::MAX)
            .max(last.settle_p99_ms.unwrap_or(f64::MAX));
        v.push(Verdict {
            requirement: "scenario 2: settle p99 ≤ 2 s".into(),
            measured: format!(
                "{} ms in the first hour, {} ms in the last",
                opt_ms(first.settle_p99_ms),
                opt_ms(last.settle_p99_ms)
            ),
            holds: p99 <= 2000.0,
        });
        let (_, e, f) = &run.phases[2];
        let quiet = figures(run, *e, *f);
        let churn_error = first.count_error.max(last.count_error);
        v.push(Verdict {
            requirement: "scenario 2: count error 0 (each count exact when taken; every page exact once settled)".into(),
            measured: format!(
                "largest error of a count when taken: {churn_error} (~{:.0} joins and leaves a second); pages once settled in the quiet minute after: {}",
                last.per_second(last.changes),
                quiet.settled_error.map_or("never settled".into(), |e| e.to_string())
            ),
            holds: churn_error == 0 && quiet.settled_error == Some(0),
        });
        let pages = last.per_second(last.count_pages);
        let bound = 2.0 * last.pages_per_full_count;
        v.push(Verdict {
            requirement: "scenario 2: list pages / s per site ≤ 2 × ⌈live keys / page⌉".into(),
            measured: format!(
                "counts listed {pages:.2} pages a second against a bound of {bound:.2} (2 × the mean ⌈keys / 1000⌉ of the counts); all list pages, the one-off ones included: {:.2} a second",
                last.per_second(last.kv.list_pages)
            ),
            holds: pages <= bound + 1e-9,
        });
        let drift = [
            ratio(
                first.per_second(first.kv.total()),
                last.per_second(last.kv.total()),
            ),
            ratio(first.keys_listed_per_count, last.keys_listed_per_count),
            ratio(
                first.per_second(first.kv.list_pages),
                last.per_second(last.kv.list_pages),
            ),
            ratio(first.listed_keys_per_open, last.listed_keys_per_open),
        ];
        let worst = drift.iter().map(|r| (r - 1.0).abs()).fold(0.0, f64::max);
        v.push(Verdict {
            requirement: "scenario 2: every figure flat from the first hour to the last (±5%)".into(),
            measured: format!(
                "last ÷ first: KV ops {:.3}, keys per count {:.3}, list pages {:.3}, keys per socket {:.3}",
                drift[0], drift[1], drift[2], drift[3]
            ),
            holds: worst <= 0.05,
        });
    }
    if let Some(run) = find(runs, "pop-death") {
        let phantoms = phantoms_after(run, 2);
        v.push(Verdict {
            requirement: "scenario 4: no phantoms two heartbeat intervals after the POP dies"
                .into(),
            measured: format!(
                "the first count taken then is off the sockets open by {} (joins and leaves in progress aside)",
                phantoms.map_or("–".into(), |p| p.to_string())
            ),
            holds: phantoms == Some(0),
        });
    }
    let visit_runs: Vec<&Run> = runs.iter().filter(|r| r.key == "visits").collect();
    if !visit_runs.is_empty() {
        let exact: Vec<String> = visit_runs
            .iter()
            .filter(|r| visits_lost(r) == Some(0))
            .map(|r| r.title.split(' ').next().unwrap_or("").to_string())
            .collect();
        let at_500 = visit_runs
            .iter()
            .find(|r| r.title.starts_with("500 "))
            .and_then(|r| visits_lost(r));
        v.push(Verdict {
            requirement: "total visits: 500 a second per site with none lost".into(),
            measured: format!(
                "lost at 500/s: {}; exact at {} visits/s",
                at_500.map_or("not run".into(), |l| l.to_string()),
                exact.join(", ")
            ),
            holds: at_500 == Some(0),
        });
    }
    v
}

/// The most broadcast slots any one second of a run held.
pub fn most_slots_in_a_second(run: &Run) -> u32 {
    let m = run.world.metrics.borrow();
    let mut per_second: std::collections::BTreeMap<u64, u32> = Default::default();
    for b in &m.broadcasts {
        *per_second.entry(b.slot_end_ms / 1000).or_default() += 1;
    }
    per_second.values().copied().max().unwrap_or(0)
}

/// How far the first count taken `intervals` heartbeat intervals after the POP died was from
/// the sockets open then (up to joins and leaves in progress; the scenario has no other
/// vanishing connections).
pub fn phantoms_after(run: &Run, intervals: u64) -> Option<u64> {
    let death = run.pop_death_us?;
    let at = death + intervals * u64::from(run.world.config.heartbeat_interval_secs) * SEC;
    let m = run.world.metrics.borrow();
    m.broadcasts
        .iter()
        .find(|b| b.counted_us - crate::clock::EPOCH_US >= at)
        .map(|b| b.error)
}

/// Visits accepted minus visits stored.
pub fn visits_lost(run: &Run) -> Option<i64> {
    let get = |label: &str| {
        run.notes
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    Some(get("visits accepted")? - get("total stored")?)
}

/// The plot: KV operations a second and keys listed per count over the long runs, and the
/// count after a POP died.
pub fn plot(runs: &[Run]) -> String {
    let (w, h) = (900.0, 260.0);
    let mut body = String::new();
    let mut y = 0.0;
    let long: Vec<&Run> = runs
        .iter()
        .filter(|r| r.key.starts_with("steady"))
        .collect();
    if !long.is_empty() {
        let ops: Vec<(&str, Series)> = long.iter().map(|r| (r.key, series(r).0)).collect();
        body.push_str(&chart(
            "KV operations a second (all kinds), per minute",
            "ops / s",
            &ops,
            y,
            w,
            h,
        ));
        y += h;
        let listed: Vec<(&str, Series)> = long.iter().map(|r| (r.key, series(r).1)).collect();
        body.push_str(&chart(
            "Keys listed per count, per minute",
            "keys",
            &listed,
            y,
            w,
            h,
        ));
        y += h;
    }
    if let Some(run) = find(runs, "pop-death") {
        let death = run.pop_death_us.unwrap_or(0);
        let m = run.world.metrics.borrow();
        let points: Series = m
            .phantoms
            .iter()
            .filter(|(t, _)| *t + MIN >= death && *t <= death + 3 * MIN)
            .map(|(t, p)| {
                (
                    (*t as f64 - death as f64) / MIN as f64 + 1.0,
                    (*p).max(0) as f64,
                )
            })
            .collect();
        body.push_str(&chart(
            "After a POP dies (at minute 1): pages' count minus sockets open",
            "phantoms",
            &[("pop-death", points)],
            y,
            w,
            h,
        ));
        y += h;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}

/// The whole report.
pub fn document(
    runs: &[Run],
    params: &Params,
    config: &liveuser_edge::config::Config,
    took_s: f64,
    plot_path: &str,
) -> String {
    let mut md = String::new();
    md.push_str("# LiveUser on Fastly's network: a simulation\n\n");
    let _ = writeln!(
        md,
        "Regenerate with `scripts/simulate` (this run: {took_s:.0} s on the project's 2-core machine). \
The simulator (`sim/`) runs **the service's own request handling** — `router::handle` for every \
WebSocket-over-HTTP call a socket causes, `broadcast::run` for every broadcast a request wins, \
exactly as `main` does on Compute — over simulated host services behind the same traits \
(`KvStore`, `SharedCache`, `Publisher`, `Clock`, `IdSource`), on a virtual clock. Every random \
choice comes from one seed ({}), so a run is repeatable to the message.\n",
        params.seed
    );
    md.push_str("## Verdict\n\n| requirement | measured | |\n|---|---|---|\n");
    for v in verdicts(runs) {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            v.requirement,
            v.measured,
            if v.holds { "holds" } else { "**fails**" }
        );
    }
    md.push_str(DESIGN);
    md.push('\n');
    md.push_str(include_str!("../baseline.md"));
    md.push_str("\n## Scenarios\n\nEach table gives the figures of each phase of a run; *settle* is the time from a change (a join's or leave's request) until the last POP holding subscribers has delivered a broadcast counted after it; *count error once settled* compares what every page shows, sampled each second when no change happened in the 2 seconds before, with the designed count (sockets open, plus connections that vanished without an event and have not expired yet: the service cannot know of those before their TTL). KV operations are over all POPs.\n\n");
    for run in runs {
        md.push_str(&section(run, params));
        md.push('\n');
    }
    let _ = writeln!(md, "## Over time\n\n![KV operations, keys listed per count, and phantoms after a POP dies]({plot_path})\n");
    md.push_str("## The model\n\nService settings (the defaults of `Config`): ");
    let _ = writeln!(
        md,
        "heartbeat every {} s, presence TTL {} s, sweeps every {} s, broadcast slots of {} ms, KV settle wait {} ms, Fanout keep-alive after {} s.\n",
        config.heartbeat_interval_secs,
        config.presence_ttl_secs,
        config.sweep_interval_secs,
        config.broadcast_interval_ms,
        config.kv_settle_ms,
        config.keep_alive_secs()
    );
    md.push_str("| flag | value | unit | why this value |\n|---|---|---|---|\n");
    for (name, value, unit, reason) in params.table() {
        let _ = writeln!(md, "| `--{name}` | {value} | {unit} | {reason} |");
    }
    md.push_str(LIMITS);
    md
}

const DESIGN: &str = "
## The design these figures are for

- **Presence keys are bounded.** A connection writes `presence/<site>/<id>/<expiry>` at OPEN and
  on each heartbeat, and each refresh deletes the keys older than the one it replaces: at most
  two keys alive (the newest, and the previous one for one more interval, because another POP
  may see the delete of an old key before the write of its successor). A close deletes the
  lease's keys (waiting out the key's one-write-a-second limit if it closes right after a
  refresh). Keys of connections that vanished without an event are deleted by the sweep that
  finds them expired, so listings never carry a day of expired keys.
- **One broadcast per slot, across every POP.** A change claims its 500 ms slot first in the
  POP's cache (one request per POP goes on), then with an insert-only KV write of the slot's
  key: exactly one POP in the world wins, waits for the slot's end plus the KV settle time,
  counts with full 1,000-key pages, and publishes. Trade-off: a slot with changes in P POPs
  costs up to P insert-only writes (one wins) instead of P listings and P publishes.
- **Sweeps instead of per-heartbeat counts.** Heartbeats (and Fanout's keep-alive calls) claim a
  sweep at most once per sweep interval per site, the same two-step way. The sweep counts,
  deletes orphaned keys, and publishes only if the count or total differs from the site's
  snapshot (or the last publish is five minutes old).
- **A snapshot for reads.** Every publish stores `<slot> <count> <total>` in one of two rotating
  KV keys (each written at most once a second); `/api/online`, `/api/total` and sweeps read it
  with a lookup, never a listing.
- **Visits without a hot key.** A visit is one insert-only write of its own key; broadcasts of
  slots that start a new second fold finished seconds into the site's tally with one
  conditional write (at most one a second), and delete the folded keys.
";

const LIMITS: &str = "
What the model leaves out, so the figures are read for what they are:

- A request runs to completion at the virtual time it arrives; its own clock moves by each
  host call's latency, and its writes become visible to other POPs after their lag, but it does
  not see writes made by requests that arrive while it runs (a listing of several pages reads
  them all as of its first page). Concurrent requests within one POP therefore never collapse
  on a cache miss, which the core cache would do anyway.
- Conditional writes are decided exactly at one primary store; production's KV is assumed to
  do the same (insert-only and generation-match writes would be unsafe otherwise).
- Fanout delivers every publish to every subscribed socket; its own limits and the browser side
  are not modelled. Compute's limits per execution (time, memory) are not modelled; the most KV
  operations one request made is reported per kind instead.
- Latencies and lags are assumptions (see the flags); change them and rerun to see how the
  figures move.
";
