//! What the world measures beyond each request's own costs: the count a broadcast delivers to
//! each POP's pages, what pages show against the designed count each second, and the
//! presence keys each minute.

use liveuser_edge::count::presence;
use liveuser_edge::wire::protocol::Shown;

use super::{World, SETTLED_AFTER_US};
use crate::clock::{EPOCH_US, SEC};
use crate::metrics::KeySample;

impl World {
    /// A message reaches the POP's sockets on `channel`. The site's pages show its count
    /// unless it was counted for an earlier slot than the one they show (as the widget does).
    pub(super) fn deliver(&self, pop: usize, channel: &str, count: u64, slot: Option<u64>, t: u64) {
        if !self.pops[pop].alive.get() {
            return;
        }
        if !self.is_measured_channel(channel) {
            return;
        }
        let n = self.fanout.borrow().subscribers(pop, channel);
        let mut m = self.metrics.borrow_mut();
        m.delivered(t, n);
        if channel != self.site.channel() {
            return;
        }
        // A count without a slot could not be put in order.
        m.unslotted += u64::from(slot.is_none());
        let mut shown_slots = self.shown_slot.borrow_mut();
        let shown_slot = shown_slots[pop];
        if let (Some(s), Some(shown)) = (slot, shown_slot) {
            if s < shown {
                m.arrived_out_of_order += 1;
                return;
            }
        }
        shown_slots[pop] = slot.or(shown_slot);
        self.shown.borrow_mut()[pop] = Some(count);
    }

    /// Whether `channel` is the measured site's (its count, totals or a page of it).
    fn is_measured_channel(&self, channel: &str) -> bool {
        let site = &self.site;
        channel == site.channel()
            || channel == site.totals_channel()
            || channel.starts_with(&format!("page:{site}:"))
    }

    pub(super) fn sample_second(&self, t: u64) {
        let mut m = self.metrics.borrow_mut();
        let designed = m.designed(t);
        let channel = self.site.channel();
        let fanout = self.fanout.borrow();
        let shown: Vec<u64> = self
            .shown
            .borrow()
            .iter()
            .enumerate()
            .filter(|(p, _)| fanout.subscribers(*p, &channel) > 0)
            .filter_map(|(_, s)| *s)
            .collect();
        if let Some(&most) = shown.iter().max() {
            let open = m.open;
            let over = if looks_alike(most, open) {
                0
            } else {
                most as i64 - open as i64
            };
            m.phantoms.push((t - EPOCH_US, over));
        }
        // Settled: no change in the last two seconds, and no vanished connection expired since
        // the last sweep could have noticed it.
        let sweep = u64::from(self.config.sweep_interval_secs) * SEC;
        if t >= m.last_change_us + SETTLED_AFTER_US
            && t >= m.last_expiry_us + sweep + SETTLED_AFTER_US
        {
            let error = |s: &u64| {
                if looks_alike(*s, designed) {
                    0
                } else {
                    s.abs_diff(designed)
                }
            };
            if let Some(err) = shown.iter().map(error).max() {
                m.settled_error(t - EPOCH_US, err);
            }
        }
    }

    pub(super) fn sample_minute(&self, t: u64) {
        self.kv.borrow_mut().collect_garbage(t);
        for p in &self.pops {
            p.cache.borrow_mut().collect_garbage(t);
        }
        // What a count of the current window lists: its keys by shard, then id.
        let now_ms = t / 1000;
        let window = presence::window_of(&self.config, now_ms);
        let by_shard = self
            .kv
            .borrow()
            .listed_by_segment(&presence::window_prefix(&self.site, window, ""), t);
        let mut per_id: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for ids in by_shard.values() {
            for id in ids {
                *per_id.entry(id.as_str()).or_default() += 1;
            }
        }
        let max_per_connection = per_id.values().copied().max().unwrap_or(0);
        let listed_keys = by_shard.values().map(|ids| ids.len() as u64).sum();
        let mut m = self.metrics.borrow_mut();
        let open = m.open;
        m.key_samples.push(KeySample {
            at_us: t - EPOCH_US,
            open,
            listed_keys,
            max_per_connection,
        });
    }
}

/// Whether pages show counts `a` and `b` alike: the same count, or the same "1.2K".
fn looks_alike(a: u64, b: u64) -> bool {
    a == b || Shown::exact(a).looks_like(&Shown::exact(b))
}
