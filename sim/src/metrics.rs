//! What a run measures. The world feeds it as events happen; the report reads it afterwards.
//!
//! Truth is the number of sockets open. The *designed* count also includes connections that
//! vanished without any event and whose presence has not expired yet: the service cannot know
//! of those before their TTL, so counting them until then is the design, not an error; how
//! long they linger is reported as phantoms.

use std::collections::{BTreeMap, VecDeque};

use crate::clock::{EPOCH_US, HOUR, MIN, SEC};
use crate::kv::Ops;

/// What one kind of request cost, summed.
#[derive(Debug, Clone, Copy, Default)]
pub struct KindCost {
    pub requests: u64,
    pub ops: Ops,
    /// The most KV operations one request of this kind made.
    pub max_ops: u64,
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
    /// Published count minus the designed count when it was taken.
    pub error: i64,
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
    /// (time, designed count) after each change, for the last minute.
    history: VecDeque<(u64, u64)>,
    /// Change times still waiting for a broadcast that counted after them.
    pending: VecDeque<u64>,
    pub last_change_us: u64,
    /// (change time, settle latency) per change.
    pub settles: Vec<(u64, u64)>,
    pub broadcasts: Vec<Broadcast>,
    /// Publish requests per second.
    pub publishes_per_second: Vec<u32>,
    /// Messages delivered to sockets per minute.
    pub delivered_per_minute: Vec<u64>,
    /// Requests and their KV cost by kind, per hour.
    pub cost: BTreeMap<(&'static str, usize), KindCost>,
    /// The largest |shown − designed| over all POPs, per minute, when settled.
    pub settled_error_per_minute: Vec<Option<u64>>,
    /// (time, shown − true) per second: phantoms a page would show.
    pub phantoms: Vec<(u64, i64)>,
    pub key_samples: Vec<KeySample>,
    pub refused_opens: u64,
    pub server_closes: u64,
    pub visits_accepted: u64,
    /// Log lines of the service, by kind (`total-increment-failed`, …).
    pub log_lines: BTreeMap<String, u64>,
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
        while self.vanished.front().is_some_and(|e| *e <= t) {
            self.vanished.pop_front();
        }
        self.open + self.vanished.len() as u64
    }

    fn record(&mut self, t: u64) {
        let d = self.designed(t);
        self.history.push_back((t, d));
        while self.history.len() > 2 && self.history[1].0 + MIN < t {
            self.history.pop_front();
        }
    }

    /// The designed count at a recent time `t`.
    pub fn designed_at(&self, t: u64) -> u64 {
        let i = self.history.partition_point(|(at, _)| *at <= t);
        if i == 0 {
            self.history.front().map_or(0, |(_, d)| *d)
        } else {
            self.history[i - 1].1
        }
    }

    /// A socket opened (a change the service is told of). Changes are recorded at the time
    /// their request arrives, so the history stays in time order.
    pub fn opened(&mut self, t: u64) {
        self.open += 1;
        self.changed(t);
    }

    /// A socket closed with an event the service saw.
    pub fn closed(&mut self, t: u64) {
        self.open = self.open.saturating_sub(1);
        self.changed(t);
    }

    /// A socket vanished with no event; its presence lasts until `expiry_us`.
    pub fn vanished(&mut self, t: u64, expiry_us: u64) {
        self.open = self.open.saturating_sub(1);
        let i = self.vanished.partition_point(|e| *e <= expiry_us);
        self.vanished.insert(i, expiry_us);
        self.record(t);
    }

    fn changed(&mut self, t: u64) {
        self.last_change_us = t;
        self.pending.push_back(t);
        self.record(t);
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

    pub fn delivered(&mut self, t: u64, messages: u64) {
        *slot(
            &mut self.delivered_per_minute,
            ((t - EPOCH_US) / MIN) as usize,
        ) += messages;
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
