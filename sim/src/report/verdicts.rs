//! The verdicts: the requirements, each checked against the runs that were made, and
//! the measurements they rest on.

use super::countries;
use super::figures::{figures, opt_ms};
use crate::clock::SEC;
use crate::scenarios::Run;

/// One requirement, what was measured for it, and whether it holds.
pub struct Verdict {
    pub requirement: String,
    pub measured: String,
    pub holds: bool,
}

pub(super) fn find<'a>(runs: &'a [Run], key: &str) -> Option<&'a Run> {
    runs.iter().find(|r| r.key == key)
}

fn ratio(a: f64, b: f64) -> f64 {
    if a == 0.0 && b == 0.0 {
        1.0
    } else {
        b / a.max(f64::MIN_POSITIVE)
    }
}

/// The executions over half of a limit, each named: what it was, in which run, when, and what
/// it used (empty when there were none).
fn outliers(runs: &[&Run]) -> String {
    const SHOWN: usize = 8;
    let all: Vec<String> =
        runs.iter()
            .flat_map(|r| {
                r.world
                    .metrics
                    .borrow()
                    .outliers
                    .clone()
                    .into_iter()
                    .map(|o| {
                        let u = o.usage;
                        format!(
                    "{} in {} at {:.1} min ({}{:.1} ms CPU, {:.1} MB, {:.1} s, {} requests)",
                    o.kind,
                    r.key,
                    o.at_us as f64 / 60e6,
                    u.killed.map_or(String::new(), |l| format!("stopped by {}: ", l.name())),
                    u.cpu_ms,
                    u.heap_bytes as f64 / 1e6,
                    u.wall_us as f64 / 1e6,
                    u.backend_requests
                )
                    })
            })
            .collect();
    if all.is_empty() {
        return String::new();
    }
    let more = all.len().saturating_sub(SHOWN);
    let mut text = format!(". Over half: {}", all[..all.len().min(SHOWN)].join("; "));
    if more > 0 {
        text += &format!("; and {more} more");
    }
    text
}

/// The requirements, checked against the runs that were made.
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
        let mut executions = crate::metrics::ExecMinute::default();
        for r in &presence_runs {
            for e in &r.world.metrics.borrow().executions_per_minute {
                executions.add(e);
            }
        }
        let w = executions.worst;
        let outliers = outliers(&presence_runs);
        v.push(Verdict {
            requirement: "no execution over half of any Compute limit (CPU 25 ms as wasm, heap 64 MB, wall 60 s, 16 backend requests); none stopped".into(),
            measured: format!(
                "{} executions: {} stopped, {} over half; at most {:.1} ms CPU, {:.1} MB heap, {:.1} s wall, {} backend requests. {} executions' CPU looked large and was measured again on the same answers: the host's noise removed was at most {:.1} ms, and {} second measurements proved nothing{}",
                executions.executions,
                executions.killed,
                executions.over_half,
                w.cpu_ms,
                w.heap_bytes as f64 / 1e6,
                w.wall_us as f64 / 1e6,
                w.backend_requests,
                executions.remeasured,
                w.noise_ms,
                executions.inconclusive,
                outliers
            ),
            holds: executions.killed == 0 && executions.over_half == 0,
        });
        let (deletes, wasted) = presence_runs.iter().fold((0, 0), |(d, w), r| {
            let kv = r.world.kv.borrow();
            let ops = kv
                .per_minute
                .iter()
                .fold(crate::kv::Ops::default(), |mut a, o| {
                    a.add(o);
                    a
                });
            (d + ops.deletes, w + ops.deletes_of_gone)
        });
        v.push(Verdict {
            requirement: "each key deleted once (a close deletes its own keys; counts delete nothing); under 0.1% of deletes find the key gone".into(),
            measured: format!("{wasted} of {deletes} deletes found the key gone"),
            holds: wasted as f64 <= deletes as f64 * 0.001,
        });
        let expired: u64 = presence_runs
            .iter()
            .map(|r| {
                r.world
                    .kv
                    .borrow()
                    .per_minute
                    .iter()
                    .map(|o| o.expired_listed)
                    .sum::<u64>()
            })
            .sum();
        v.push(Verdict {
            requirement: "no listing returns an expired key (a count lists its own window only: production may list expired keys for a day)".into(),
            measured: format!("{expired} expired keys listed"),
            holds: expired == 0,
        });
        let (pages, walked) = presence_runs.iter().fold((0, 0), |(p, w), r| {
            let kv = r.world.kv.borrow();
            kv.per_minute
                .iter()
                .fold((p, w), |(p, w), o| (p + o.list_pages, w + o.walked_pages))
        });
        v.push(Verdict {
            requirement: "no count walks a listing past its first page (the model reads a request's pages as of its start, so a walk's skew under concurrent writes would not show: there must be none)".into(),
            measured: format!("{walked} of {pages} list pages read past a cursor"),
            holds: walked == 0,
        });
        let (late, unslotted) = presence_runs.iter().fold((0, 0), |(l, u), r| {
            let m = r.world.metrics.borrow();
            (l + m.arrived_out_of_order, u + m.unslotted)
        });
        v.push(Verdict {
            requirement: "0 counts shown out of order: every count names its slot, and a page keeps the newest it has shown".into(),
            measured: format!("{late} count messages arrived after a later slot's and were not shown; {unslotted} named no slot"),
            holds: unslotted == 0,
        });
        v.push(Verdict {
            requirement: "keys a count lists per connection ≤ 2 (one a window, two while a page move is in flight), at every minute of every scenario".into(),
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
            requirement: "scenario 2: presence list pages / s per site ≤ 2 × ⌈1.1 × live keys / 450⌉ (a page per census leaf)".into(),
            measured: format!(
                "counts listed {pages:.2} presence pages a second against a bound of {bound:.2} (2 × the mean ⌈1.1 × keys / 450⌉ of the counts); all list pages (visits, one-off ones) included: {:.2} a second",
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
    for (key, label) in [
        ("pop-death", "scenario 4"),
        ("pop-death-1m", "1,000,000 readers"),
    ] {
        let Some(run) = find(runs, key) else { continue };
        let phantoms = phantoms_after(run, 2);
        v.push(Verdict {
            requirement: format!("{label}: no phantoms two heartbeat intervals after the POP dies"),
            measured: format!(
                "the first count taken then is off the sockets open by {} (joins and leaves in progress aside)",
                phantoms.map_or("–".into(), |p| p.to_string())
            ),
            holds: phantoms == Some(0),
        });
        // Readers reconnect within seconds naming their presence: they are counted once,
        // not once more while their old presence waits to expire.
        let dead_pop = run
            .notes
            .iter()
            .find(|(label, _)| label == "sockets at the dead POP")
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(0);
        let at_10s = phantoms_after_us(run, 10 * SEC);
        let at_60s = phantoms_after_us(run, 60 * SEC);
        v.push(Verdict {
            requirement: format!("{label}: readers of the dead POP reconnect and are not counted twice: phantoms < 1% of its sockets 10 s after, 0 after 60 s"),
            measured: format!(
                "{} of its {dead_pop} sockets 10 s after, {} 60 s after",
                at_10s.map_or("–".into(), |p| p.to_string()),
                at_60s.map_or("–".into(), |p| p.to_string())
            ),
            holds: at_10s.is_some_and(|p| p * 100 < dead_pop.max(1))
                && at_60s == Some(0),
        });
    }
    large_verdicts(runs, &mut v);
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
    if let Some((with, without)) = countries::of(runs) {
        v.push(Verdict {
            requirement: "readers by country: nothing per heartbeat, under 5% per broadcast (the 100,000-reader site with and without countries)".into(),
            measured: countries::measured(&with, &without),
            holds: countries::holds(&with, &without),
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
    let interval_us = u64::from(run.world.config.heartbeat_interval_secs) * SEC;
    phantoms_after_us(run, intervals * interval_us)
}

/// Readers the first count taken `after_us` after the POP died has beyond the sockets open:
/// in scenario 4 no reader vanishes for good, so each is one counted twice.
pub fn phantoms_after_us(run: &Run, after_us: u64) -> Option<u64> {
    let at = run.pop_death_us? + after_us;
    let m = run.world.metrics.borrow();
    m.counts
        .iter()
        .find(|c| c.at_us >= at && c.count.is_some())
        .map(|c| c.over_open)
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

/// The million-reader design's requirements: one site of 20,000, 100,000 and 1,000,000
/// readers, each measured over its steady phase (an hour each).
fn large_verdicts(runs: &[Run], v: &mut Vec<Verdict>) {
    let steady: Vec<(&str, super::figures::Figures)> = ["large-20k", "large-100k", "large-1m"]
        .iter()
        .filter_map(|key| {
            let run = find(runs, key)?;
            let (_, a, b) = &run.phases[1];
            Some((*key, figures(run, *a, *b)))
        })
        .collect();
    if steady.is_empty() {
        return;
    }
    let name = |key: &str| key.trim_start_matches("large-").to_string();
    let p99 = |f: &super::figures::Figures| f.settle_p99_ms.unwrap_or(f64::MAX);
    let p999 = |f: &super::figures::Figures| f.settle_p999_ms.unwrap_or(f64::MAX);
    let listed = |fig: &dyn Fn(&super::figures::Figures) -> String| {
        steady
            .iter()
            .map(|(k, f)| format!("{}: {}", name(k), fig(f)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let small = steady
        .iter()
        .find(|(k, _)| *k == "large-20k")
        .map(|(_, f)| p99(f));
    let big = steady
        .iter()
        .find(|(k, _)| *k == "large-1m")
        .map(|(_, f)| p99(f));
    let growth = match (small, big) {
        (Some(s), Some(b)) => Some(b / s),
        _ => None,
    };
    v.push(Verdict {
        requirement: "one site of 20,000 / 100,000 / 1,000,000 readers: settle p99 ≤ 2.0 s and p99.9 ≤ 3 s at every size, and at a million no more than 1.15 × the 20,000 figure".into(),
        measured: format!(
            "p99 / p99.9 ms over the steady phase — {}; a million ÷ 20,000: {}",
            listed(&|f| format!("{} / {}", opt_ms(f.settle_p99_ms), opt_ms(f.settle_p999_ms))),
            growth.map_or("–".into(), |g| format!("{g:.2}"))
        ),
        holds: steady.iter().all(|(_, f)| p99(f) <= 2_000.0 && p999(f) <= 3_000.0)
            && growth.is_none_or(|g| g <= 1.15),
    });
    let costs: Vec<f64> = steady
        .iter()
        .map(|(_, f)| f.kv_class_a_per_reader_hour())
        .collect();
    let lo = costs.iter().copied().fold(f64::MAX, f64::min);
    let hi = costs.iter().copied().fold(0.0, f64::max);
    let mid = (lo + hi) / 2.0;
    v.push(Verdict {
        requirement: "KV writes, deletes and lists per reader-hour ≤ 150 and within ±5% from 20,000 to 1,000,000 readers".into(),
        measured: format!(
            "{}; spread ±{:.1}%",
            listed(&|f| format!("{:.1}", f.kv_class_a_per_reader_hour())),
            if mid > 0.0 { (hi - lo) / 2.0 / mid * 100.0 } else { 0.0 }
        ),
        holds: hi <= 150.0 && hi - lo <= 0.1 * mid,
    });
    let messages: Vec<(&str, f64)> = steady
        .iter()
        .filter(|(k, _)| *k != "large-20k")
        .map(|(k, f)| (*k, f.per_reader_hour(f.delivered)))
        .collect();
    v.push(Verdict {
        requirement: "Fanout messages per reader-hour ≤ 720 at 100,000 readers and more (pages are told what they would show differently)".into(),
        measured: messages
            .iter()
            .map(|(k, m)| format!("{}: {m:.0}", name(k)))
            .collect::<Vec<_>>()
            .join(", "),
        holds: messages.iter().all(|(_, m)| *m <= 720.0),
    });
    let errors: Vec<String> = ["large-20k", "large-100k", "large-1m", "flash-1m"]
        .iter()
        .filter_map(|key| {
            let run = find(runs, key)?;
            let all = figures(run, 0, u64::MAX / 2);
            // Every large run ends with a quiet minute: pages are judged settled there.
            let quiet = run.phases.last().map(|(_, a, b)| figures(run, *a, *b));
            Some(format!(
                "{key}: {} at count time, {} once settled",
                all.count_error,
                quiet
                    .and_then(|q| q.settled_error)
                    .map_or("never settled".into(), |e| e.to_string())
            ))
        })
        .collect();
    let exact = ["large-20k", "large-100k", "large-1m", "flash-1m"]
        .iter()
        .filter_map(|key| find(runs, key))
        .all(|run| {
            let all = figures(run, 0, u64::MAX / 2);
            let quiet = run.phases.last().map(|(_, a, b)| figures(run, *a, *b));
            all.count_error == 0 && quiet.and_then(|q| q.settled_error) == Some(0)
        });
    v.push(Verdict {
        requirement: "large sites: every count exact when taken (the API and the badge), and pages showing what the widget would once settled".into(),
        measured: errors.join("; "),
        holds: exact,
    });
}
