//! What a run measures. The world feeds it as events happen; the report reads it afterwards.
//!
//! Truth is the number of sockets open. The *designed* count also includes connections that
//! vanished without any event and whose presence has not expired yet: the service cannot know
//! of those before their TTL, so counting them until then is the design, not an error; how
//! long they linger is reported as phantoms.

use std::collections::{BTreeMap, VecDeque};

use crate::clock::{EPOCH_US, HOUR, MIN, SEC};
use crate::compute::{Usage, LIMITS};
use crate::kv::Ops;

/// What one kind of request cost, summed.
#[derive(Debug, Clone, Copy, Default)]
pub struct KindCost {
    pub requests: u64,
    pub ops: Ops,
    /// The most KV operations one request of this kind made.
    pub max_ops: u64,
}

/// The executions of one minute (a request, and the broadcast it ran): how many, how many
/// Compute stopped, how many used more than half of a limit, and the most each figure reached.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecMinute {
    pub executions: u64,
    pub killed: u64,
    pub over_half: u64,
    /// Executions a step of which was measured a second time (see `replay`).
    pub remeasured: u64,
    /// Second measurements that proved nothing (the code took another path).
    pub inconclusive: u64,
    pub worst: Usage,
}

impl ExecMinute {
    /// Adds another minute's (or run's) executions to these.
    pub fn add(&mut self, o: &ExecMinute) {
        self.executions += o.executions;
        self.killed += o.killed;
        self.over_half += o.over_half;
        self.remeasured += o.remeasured;
        self.inconclusive += o.inconclusive;
        self.worst = self.worst.max(o.worst);
    }
}

/// How many executions over half of a limit are kept whole for the report.
pub const OUTLIERS_KEPT: usize = 50;

/// One execution that used more than half of a Compute limit.
#[derive(Debug, Clone, Copy)]
pub struct Outlier {
    pub at_us: u64,
    pub kind: &'static str,
    pub usage: Usage,
}

/// One count broadcast.
#[derive(Debug, Clone, Copy)]
pub struct Broadcast {
    /// The slot it belongs to, in the service's milliseconds.
    pub slot_end_ms: u64,
    pub published_us: u64,
    /// When the count was taken (its first list page).
    pub counted_us: u64,
    pub count: u64,
    /// Keys the count listed.
    pub keys_listed: u64,
    pub list_pages: u64,
    /// How far the count was from what it may be (see [`Metrics::count_error`]).
    pub error: u64,
    /// The count minus the designed count when it was taken.
    pub excess: i64,
    /// Readers counted beyond the sockets open (see [`Metrics::over_open`]).
    pub over_open: u64,
}

/// One count a broadcast (or sweep) took, whether it published or not.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub at_us: u64,
    /// What it counted, and how many of those were beyond the sockets open (joins in
    /// progress aside): see [`Metrics::over_open`]. `None`: the count failed.
    pub count: Option<u64>,
    pub over_open: u64,
    /// Presence keys its listing returned (visits are listed apart).
    pub keys_listed: u64,
    pub list_pages: u64,
}

/// One sample of the stored presence keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeySample {
    pub at_us: u64,
    pub open: u64,
    /// Presence keys a listing would return (live or expired-but-listed).
    pub listed_keys: u64,
    /// The most keys one open connection has.
    pub max_per_connection: u32,
}

#[derive(Default)]
pub struct Metrics {
    pub open: u64,
    /// Expiries of vanished connections' presence, still counted by design.
    vanished: VecDeque<u64>,
    /// Changes of the last two minutes, in the order they took effect.
    recent: VecDeque<Change>,
    /// Connections that vanished in the last few minutes: (when, when their presence expires).
    recent_vanished: VecDeque<(u64, u64)>,
    /// Change times still waiting for a broadcast that counted after them.
    pending: VecDeque<u64>,
    pub last_change_us: u64,
    /// When the last vanished connection's presence expired (the service notices it at the
    /// next sweep after that).
    pub last_expiry_us: u64,
    /// (change time, settle latency) per change.
    pub settles: Vec<(u64, u64)>,
    pub broadcasts: Vec<Broadcast>,
    pub counts: Vec<Count>,
    /// Publish requests per second.
    pub publishes_per_second: Vec<u32>,
    /// Messages delivered to sockets per minute.
    pub delivered_per_minute: Vec<u64>,
    /// Requests and their KV cost by kind, per hour.
    pub cost: BTreeMap<(&'static str, usize), KindCost>,
    /// Executions of each kind and the CPU they used, summed (ms, as wasm).
    pub cpu_by_kind: BTreeMap<&'static str, (u64, f64)>,
    /// The largest |shown − designed| over all POPs, per minute, when settled.
    pub settled_error_per_minute: Vec<Option<u64>>,
    /// (time, shown − true) per second: phantoms a page would show.
    pub phantoms: Vec<(u64, i64)>,
    pub key_samples: Vec<KeySample>,
    pub refused_opens: u64,
    pub server_closes: u64,
    pub visits_accepted: u64,
    /// Log lines of the service, by kind (`visit-failed`, `presence-leave-failed`, …).
    pub log_lines: BTreeMap<String, u64>,
    /// Executions per minute, measured against Compute's limits.
    pub executions_per_minute: Vec<ExecMinute>,
    /// The first [`OUTLIERS_KEPT`] executions over half of a limit, each whole.
    pub outliers: Vec<Outlier>,
    /// Count messages that reached pages after one counted for a later slot: the widget keeps
    /// the later, so none is shown.
    pub arrived_out_of_order: u64,
    /// Count messages that named no slot (a page could not tell whether they are stale).
    pub unslotted: u64,
}

/// A socket opening or closing, as the count sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    /// When the request that made it arrived.
    start: u64,
    /// When it took effect in the store (its presence write or last delete committed).
    end: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Opened,
    Closed,
    /// Closed without an event: the designed count keeps it until its presence expires.
    Vanished,
}

fn slot<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl Metrics {
    /// The designed count: open sockets plus vanished ones not yet expired.
    pub fn designed(&mut self, t: u64) -> u64 {
        while let Some(&e) = self.vanished.front() {
            if e > t {
                break;
            }
            self.last_expiry_us = self.last_expiry_us.max(e);
            self.vanished.pop_front();
        }
        self.open + self.vanished.len() as u64
    }

    fn record(&mut self, change: Change) {
        // A change takes effect when its KV write commits, which may come after changes of
        // requests that started later: keep the history in the order of effect.
        let i = self.recent.partition_point(|c| c.end <= change.end);
        self.recent.insert(i, change);
        while self
            .recent
            .front()
            .is_some_and(|c| c.end + 2 * MIN < change.end)
        {
            self.recent.pop_front();
        }
        while self
            .recent_vanished
            .front()
            .is_some_and(|(_, expiry)| expiry + 2 * MIN < change.end)
        {
            self.recent_vanished.pop_front();
        }
    }

    /// Sockets open (as far as the store is concerned) at a recent time `t`.
    fn open_at(&self, t: u64) -> i64 {
        let after: i64 = self
            .recent
            .iter()
            .rev()
            .take_while(|c| c.end > t)
            .map(|c| if c.kind == Kind::Opened { 1 } else { -1 })
            .sum();
        self.open as i64 - after
    }

    /// The designed count at a recent time `t`.
    pub fn designed_at(&self, t: u64) -> i64 {
        let vanished = self
            .recent_vanished
            .iter()
            .filter(|(at, expiry)| *at <= t && *expiry > t)
            .count() as i64;
        self.open_at(t) + vanished
    }

    /// How far a count whose listing ran until `counted_to` is from what it may be: every
    /// change that took effect before `from` (its slot's end) included, and any change in
    /// progress after it (its request had arrived by `counted_to`, its effect not before
    /// `from`) either included or not: it belongs to the next slot, and the KV store may or
    /// may not show it yet.
    pub fn count_error(&self, count: u64, from: u64, counted_to: u64) -> u64 {
        let base = self.designed_at(from);
        let in_progress = |c: &&Change| c.end > from && c.start <= counted_to;
        let joins = self
            .recent
            .iter()
            .filter(in_progress)
            .filter(|c| c.kind == Kind::Opened)
            .count() as i64;
        let leaves = self
            .recent
            .iter()
            .filter(in_progress)
            .filter(|c| c.kind == Kind::Closed)
            .count() as i64
            + self
                .recent_vanished
                .iter()
                .filter(|(_, e)| *e > from && *e <= counted_to)
                .count() as i64;
        let (lo, hi, count) = (base - leaves, base + joins, count as i64);
        (lo - count).max(count - hi).max(0) as u64
    }

    /// How many readers a count taken from `from` to `counted_to` has beyond the sockets open
    /// (joins in progress allowed): connections counted that nobody holds, whether by design
    /// (vanished ones before their TTL) or not (a reader counted twice).
    pub fn over_open(&self, count: u64, from: u64, counted_to: u64) -> u64 {
        let joins = self
            .recent
            .iter()
            .filter(|c| c.end > from && c.start <= counted_to && c.kind == Kind::Opened)
            .count() as i64;
        (count as i64 - self.open_at(from) - joins).max(0) as u64
    }

    /// A socket opened (a change the service is told of): its request arrived at `start`,
    /// its presence write committed at `end`.
    pub fn opened(&mut self, start: u64, end: u64) {
        self.open += 1;
        self.changed(Change {
            start,
            end,
            kind: Kind::Opened,
        });
    }

    /// A socket closed with an event the service saw: its request arrived at `start`, the
    /// connection stopped counting at `end`.
    pub fn closed(&mut self, start: u64, end: u64) {
        self.open = self.open.saturating_sub(1);
        self.changed(Change {
            start,
            end,
            kind: Kind::Closed,
        });
    }

    /// A reader whose socket vanished (its presence lasting until `expiry_us`) reconnected,
    /// naming that presence: its request arrived at `start`, its new socket counts from `end`,
    /// and from then the old presence is that socket's, not a vanished one's.
    pub fn resumed(&mut self, start: u64, end: u64, expiry_us: u64) {
        if let Some(i) = self.vanished.iter().position(|e| *e == expiry_us) {
            self.vanished.remove(i);
            let at = end.min(expiry_us);
            let j = self.vanished.partition_point(|e| *e <= at);
            self.vanished.insert(j, at);
        }
        if let Some(v) = self
            .recent_vanished
            .iter_mut()
            .find(|(_, e)| *e == expiry_us)
        {
            v.1 = end.min(expiry_us);
        }
        self.opened(start, end);
    }

    /// A socket vanished with no event; its presence lasts until `expiry_us`.
    pub fn vanished(&mut self, t: u64, expiry_us: u64) {
        self.open = self.open.saturating_sub(1);
        let i = self.vanished.partition_point(|e| *e <= expiry_us);
        self.vanished.insert(i, expiry_us);
        self.recent_vanished.push_back((t, expiry_us));
        self.record(Change {
            start: t,
            end: t,
            kind: Kind::Vanished,
        });
    }

    fn changed(&mut self, change: Change) {
        self.last_change_us = self.last_change_us.max(change.end);
        let i = self.pending.partition_point(|at| *at <= change.end);
        self.pending.insert(i, change.end);
        self.record(change);
    }

    /// A broadcast counted at `counted_us` reached its last POP at `delivered_us`: every change
    /// before the count is settled then.
    pub fn broadcast(&mut self, b: Broadcast, delivered_us: u64) {
        while let Some(&t) = self.pending.front() {
            if t > b.counted_us {
                break;
            }
            self.pending.pop_front();
            self.settles
                .push((t - EPOCH_US, delivered_us.saturating_sub(t)));
        }
        *slot(
            &mut self.publishes_per_second,
            (b.published_us / SEC) as usize,
        ) += 1;
        self.broadcasts.push(b);
    }

    /// A count taken at `counted_us` found nothing pages would show differently (the site's
    /// channel was not told): every change before it is settled at `done_us`.
    pub fn settled_unsent(&mut self, counted_us: u64, done_us: u64) {
        while let Some(&t) = self.pending.front() {
            if t > counted_us {
                break;
            }
            self.pending.pop_front();
            self.settles.push((t - EPOCH_US, done_us.saturating_sub(t)));
        }
    }

    pub fn delivered(&mut self, t: u64, messages: u64) {
        *slot(
            &mut self.delivered_per_minute,
            ((t - EPOCH_US) / MIN) as usize,
        ) += messages;
    }

    /// An execution ended at `t` having used `usage`.
    pub fn executed(&mut self, t: u64, kind: &'static str, usage: Usage) {
        let over_half = usage.worst_share(&LIMITS) > 0.5;
        if over_half && self.outliers.len() < OUTLIERS_KEPT {
            self.outliers.push(Outlier {
                at_us: t.saturating_sub(EPOCH_US),
                kind,
                usage,
            });
        }
        let m = slot(
            &mut self.executions_per_minute,
            (t.saturating_sub(EPOCH_US) / MIN) as usize,
        );
        m.executions += 1;
        m.killed += u64::from(usage.killed.is_some());
        m.over_half += u64::from(over_half);
        m.remeasured += u64::from(usage.remeasured > 0);
        m.inconclusive += u64::from(usage.inconclusive);
        m.worst = m.worst.max(usage);
        let cpu = self.cpu_by_kind.entry(kind).or_default();
        cpu.0 += 1;
        cpu.1 += usage.cpu_ms;
    }

    pub fn cost(&mut self, kind: &'static str, t: u64, ops: &Ops) {
        let c = self
            .cost
            .entry((kind, ((t - EPOCH_US) / HOUR) as usize))
            .or_default();
        c.requests += 1;
        c.ops.add(ops);
        c.max_ops = c.max_ops.max(ops.total());
    }

    pub fn settled_error(&mut self, t: u64, error: u64) {
        let e = slot(&mut self.settled_error_per_minute, (t / MIN) as usize);
        *e = Some(e.map_or(error, |x| x.max(error)));
    }

    /// Changes no broadcast has covered yet.
    pub fn unsettled(&self) -> usize {
        self.pending.len()
    }
}
