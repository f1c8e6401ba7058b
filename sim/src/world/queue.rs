//! The event queue's entries: what can happen in the world, and the order events are taken
//! in, (time, sequence), so a run is a pure function of its parameters and seed.

use liveuser_edge::count::broadcast::Plan;

#[derive(Debug, Clone)]
pub(super) enum Ev {
    Arrive(usize),
    Join(usize, u32),
    Heartbeat(usize, u32),
    Leave(usize, u32),
    /// A won broadcast wakes to count, as a step of its execution (the world holds that
    /// execution's meter under this number meanwhile).
    Broadcast(usize, Plan, u64),
    Deliver {
        pop: usize,
        channel: String,
        count: u64,
        /// The slot the count was taken for, as the message names it.
        slot: Option<u64>,
    },
    Second,
    Minute,
    KillPop(usize),
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
