//! The figures of one phase of a run: KV operations, counts and the keys they listed,
//! broadcasts, deliveries, settle times and count errors.

use crate::clock::{MIN, SEC};
use crate::kv::Ops;
use crate::metrics::{ExecMinute, Metrics};
use crate::scenarios::Run;
use liveuser_edge::count::census::LEAF_KEYS;

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
    pub settle_p999_ms: Option<f64>,
    pub settle_max_ms: Option<f64>,
    /// The largest |shown − designed| when settled (None: never settled in this phase).
    pub settled_error: Option<u64>,
    /// The largest |published − designed at count time|.
    pub count_error: u64,
    /// Joins and leaves the service was told of.
    pub changes: u64,
    /// The mean over counts of the list pages a split count may take: one per leaf, and a
    /// census splits into leaves of at least half [`LEAF_KEYS`] of the keys it expects (the
    /// last count and a tenth), so ⌈1.1 × keys / 450⌉.
    pub pages_per_full_count: f64,
    /// List pages the counts made.
    pub count_pages: u64,
    /// Executions measured against Compute's limits: how many, how many it stopped, how
    /// many used over half of a limit, and the most each figure reached.
    pub executions: ExecMinute,
    /// Messages delivered to sockets in the phase.
    pub delivered: u64,
}

impl Figures {
    pub fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.seconds.max(1.0)
    }

    /// KV writes, deletes and list pages per reader-hour: what a site owner pays for (lookups
    /// are billed apart, and cheaper).
    pub fn kv_class_a_per_reader_hour(&self) -> f64 {
        self.per_reader_hour(self.kv.inserts + self.kv.deletes + self.kv.list_pages)
    }

    /// Reader-hours in the phase (mean sockets open × hours).
    pub fn reader_hours(&self) -> f64 {
        self.mean_open * self.seconds / 3600.0
    }

    /// `n` per reader-hour.
    pub fn per_reader_hour(&self, n: u64) -> f64 {
        n as f64 / self.reader_hours().max(f64::MIN_POSITIVE)
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
            .map(|c| {
                (c.keys_listed as f64 * 1.1 / (LEAF_KEYS as f64 / 2.0))
                    .ceil()
                    .max(1.0)
            })
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
    f.delivered = delivered;
    for e in m
        .executions_per_minute
        .iter()
        .enumerate()
        .filter(|(i, _)| in_phase(*i as u64 * MIN))
        .map(|(_, e)| e)
    {
        f.executions.add(e);
    }
    let mut settles: Vec<u64> = m
        .settles
        .iter()
        .filter(|(t, _)| in_phase(*t))
        .map(|(_, l)| *l)
        .collect();
    settles.sort_unstable();
    f.settle_p50_ms = percentile(&settles, 0.5);
    f.settle_p99_ms = percentile(&settles, 0.99);
    f.settle_p999_ms = percentile(&settles, 0.999);
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

pub(super) fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.0}"))
}
