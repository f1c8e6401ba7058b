//! The event queue: what can happen in the world, and the order events are taken in, (time,
//! sequence), so a run is a pure function of its parameters and seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use liveuser_edge::count::broadcast::Plan;

#[derive(Debug, Clone)]
pub(super) enum Ev {
    Arrive(usize),
    Join(usize, u32),
    Heartbeat(usize, u32),
    Leave(usize, u32),
    /// A won broadcast wakes to count, as a step of its execution.
    Broadcast(Box<Wake>),
    Deliver(Box<Delivery>),
    Second,
    Minute,
    KillPop(usize),
}

/// A broadcast's wake (boxed, as the rarer events are, so that the queue's millions of
/// heartbeats and leaves take few bytes each).
#[derive(Debug, Clone)]
pub(super) struct Wake {
    pub(super) pop: usize,
    pub(super) plan: Plan,
    /// The execution, whose meter the world holds under this number meanwhile.
    pub(super) execution: u64,
}

/// A published count reaching one POP's subscribers.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub(super) pop: usize,
    pub(super) channel: String,
    pub(super) count: u64,
    /// The slot the count was taken for, as the message names it.
    pub(super) slot: Option<u64>,
}

pub(super) struct Queued {
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// How far ahead the queue keeps events by millisecond (a heartbeat's interval fits).
const HORIZON_MS: u64 = 1 << 16;

/// Events in (time, sequence) order. A million readers keep two million events queued; one
/// heap of them all made every event cost a climb through cache-cold levels (a tenth of a
/// long run). So the next minute or so is kept as one small heap per millisecond, and only
/// events beyond it (a reader's leave, hours away) in one heap, from which they move into
/// their millisecond as it comes within reach. The order is the same as one heap's: every
/// event of a millisecond comes before any of a later one.
pub(super) struct Queue {
    /// `near[ms % HORIZON_MS]`: the events of millisecond `ms`, for `ms` in
    /// `cursor_ms .. cursor_ms + HORIZON_MS`.
    near: Vec<BinaryHeap<Reverse<Queued>>>,
    near_len: usize,
    /// No event is queued before this millisecond (one scheduled earlier is kept in it, and
    /// is still the first taken).
    cursor_ms: u64,
    far: BinaryHeap<Reverse<Queued>>,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            near: (0..HORIZON_MS).map(|_| BinaryHeap::new()).collect(),
            near_len: 0,
            cursor_ms: 0,
            far: BinaryHeap::new(),
        }
    }
}

impl Queue {
    pub(super) fn push(&mut self, item: Queued) {
        let ms = (item.at / 1000).max(self.cursor_ms);
        if ms < self.cursor_ms + HORIZON_MS {
            self.near[(ms % HORIZON_MS) as usize].push(Reverse(item));
            self.near_len += 1;
        } else {
            self.far.push(Reverse(item));
        }
    }

    /// The first event, if it is due at or before `until` (µs).
    pub(super) fn pop_until(&mut self, until: u64) -> Option<Queued> {
        loop {
            let bucket = &mut self.near[(self.cursor_ms % HORIZON_MS) as usize];
            if let Some(Reverse(first)) = bucket.peek() {
                if first.at > until {
                    return None;
                }
                self.near_len -= 1;
                return bucket.pop().map(|Reverse(q)| q);
            }
            // This millisecond is done: on to the next that may hold an event.
            let next_ms = if self.near_len > 0 {
                self.cursor_ms + 1
            } else {
                match self.far.peek() {
                    Some(Reverse(q)) => (q.at / 1000).max(self.cursor_ms + 1),
                    None => return None,
                }
            };
            if next_ms * 1000 > until {
                return None;
            }
            self.cursor_ms = next_ms;
            while let Some(Reverse(q)) = self.far.peek() {
                if q.at / 1000 >= self.cursor_ms + HORIZON_MS {
                    break;
                }
                if let Some(Reverse(q)) = self.far.pop() {
                    self.push(q);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_time_and_sequence_order_near_and_far() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut q = Queue::default();
        let mut heap = BinaryHeap::new();
        let (mut seq, mut now) = (0u64, 0u64);
        let mut taken = Vec::new();
        let mut expected = Vec::new();
        for round in 0..2_000u64 {
            for _ in 0..(next() % 8) {
                // Mostly within a second or a minute; some hours ahead; some now.
                let ahead = match next() % 10 {
                    0 => 0,
                    1 => next() % (4 * 3_600_000_000),
                    2..=5 => next() % 1_000_000,
                    _ => next() % 60_000_000,
                };
                let at = now + ahead;
                q.push(Queued {
                    at,
                    seq,
                    ev: Ev::Second,
                });
                heap.push(Reverse((at, seq)));
                seq += 1;
            }
            let until = now + next() % 5_000_000 + round % 3;
            while let Some(item) = q.pop_until(until) {
                taken.push((item.at, item.seq));
            }
            while heap.peek().is_some_and(|Reverse((at, _))| *at <= until) {
                if let Some(Reverse(e)) = heap.pop() {
                    expected.push(e);
                }
            }
            now = until;
        }
        while let Some(item) = q.pop_until(u64::MAX) {
            taken.push((item.at, item.seq));
        }
        while let Some(Reverse(e)) = heap.pop() {
            expected.push(e);
        }
        assert_eq!(taken.len(), seq as usize);
        assert_eq!(taken, expected);
    }
}
