//! What the world measures beyond each request's own costs: the count a broadcast delivers to
//! each POP's pages, what pages show against the designed count each second, and the
//! presence keys each minute.

use liveuser_edge::count::presence;

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
            let open = m.open as i64;
            m.phantoms.push((t - EPOCH_US, most as i64 - open));
        }
        // Settled: no change in the last two seconds, and no vanished connection expired since
        // the last sweep could have noticed it.
        let sweep = u64::from(self.config.sweep_interval_secs) * SEC;
        if t >= m.last_change_us + SETTLED_AFTER_US
            && t >= m.last_expiry_us + sweep + SETTLED_AFTER_US
        {
            if let Some(err) = shown.iter().map(|s| s.abs_diff(designed)).max() {
                m.settled_error(t - EPOCH_US, err);
            }
        }
    }

    pub(super) fn sample_minute(&self, t: u64) {
        self.kv.borrow_mut().collect_garbage(t);
        for p in &self.pops {
            p.cache.borrow_mut().collect_garbage(t);
        }
        let groups = self
            .kv
            .borrow()
            .listed_by_segment(&presence::site_prefix(&self.site), t);
        let clients = self.clients.borrow();
        // A connection's keys are those its lease names (a reader that reconnected naming its
        // presence shares the id with its dead connection's keys until they expire).
        let max_per_connection = clients
            .iter()
            .filter_map(|c| c.socket.as_ref())
            .filter_map(|s| {
                let meta = |name: &str| s.meta.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                let lease: Vec<&str> = meta("Presence-Windows")?.split(',').collect();
                let keys = groups.get(meta("Presence-Id")?)?;
                Some(keys.iter().filter(|e| lease.contains(&e.as_str())).count() as u32)
            })
            .max()
            .unwrap_or(0);
        let mut m = self.metrics.borrow_mut();
        let open = m.open;
        m.key_samples.push(KeySample {
            at_us: t - EPOCH_US,
            open,
            listed_keys: groups.values().map(|keys| keys.len() as u64).sum(),
            max_per_connection,
        });
    }
}
