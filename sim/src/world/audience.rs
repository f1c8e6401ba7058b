//! What a scenario asks of the world and reads back: readers to add (with the scenario's
//! defaults, at a POP picked by weight), everyone leaving, a POP to kill, a quiet end, and
//! the sockets open now.

use super::queue::Ev;
use super::{Client, Leave, World};

impl World {
    /// A POP for a new reader, by weight among the live ones.
    pub fn pick_pop(&self) -> usize {
        let total: f64 = self
            .pops
            .iter()
            .filter(|p| p.alive.get())
            .map(|p| p.weight)
            .sum();
        let mut x = self.rng.unit() * total;
        for (i, p) in self.pops.iter().enumerate() {
            if !p.alive.get() {
                continue;
            }
            if x < p.weight {
                return i;
            }
            x -= p.weight;
        }
        self.pops.iter().rposition(|p| p.alive.get()).unwrap_or(0)
    }

    /// Adds a reader that arrives `after_us` from now.
    pub fn add_client(&self, mut client: Client, after_us: u64) -> usize {
        client.generation = 0;
        client.socket = None;
        let mut clients = self.clients.borrow_mut();
        clients.push(client);
        let id = clients.len() - 1;
        self.schedule(self.now.get() + after_us, Ev::Arrive(id));
        id
    }

    /// A reader with the scenario's defaults at a POP picked by weight.
    pub fn reader(&self, stay_us: Option<u64>, replaced: bool) -> Client {
        let leave = if self.rng.unit() < self.params.vanish_fraction {
            Leave::Vanish
        } else if self.rng.unit() < self.params.disconnect_fraction {
            Leave::Disconnect
        } else {
            Leave::Close
        };
        Client {
            pop: self.pick_pop(),
            totals: false,
            visit: true,
            stay_us,
            leave,
            replaced,
            mean_stay_us: self.params.mean_stay_ms * 1000,
            site: 0,
            aggregated: self.rng.unit() < self.params.aggregated_fraction,
            resume: None,
            generation: 0,
            socket: None,
        }
    }

    /// Makes every open reader leave, `spread_us` apart in random order.
    pub fn everyone_leaves(&self, spread_us: u64) {
        let clients = self.clients.borrow();
        for (id, c) in clients.iter().enumerate() {
            if c.socket.is_some() {
                let at = self.now.get() + self.rng.below(spread_us.max(1));
                self.schedule(at, Ev::Leave(id, c.generation));
            }
        }
    }

    /// Makes every other open reader leave (for good), `spread_us` apart in random order.
    pub fn half_leave(&self, spread_us: u64) {
        let mut clients = self.clients.borrow_mut();
        for (id, c) in clients.iter_mut().enumerate() {
            if c.socket.is_some() && id % 2 == 0 {
                c.replaced = false;
                let at = self.now.get() + self.rng.below(spread_us.max(1));
                self.schedule(at, Ev::Leave(id, c.generation));
            }
        }
    }

    /// Kills a POP `after_us` from now: its sockets vanish, its cache is lost.
    pub fn kill_pop(&self, pop: usize, after_us: u64) {
        self.schedule(self.now.get() + after_us, Ev::KillPop(pop));
    }

    /// From now on nobody arrives or leaves; heartbeats go on.
    pub fn freeze(&self) {
        self.frozen.set(true);
    }

    /// Lets go of everything but the figures (readers, keys, caches, pending events), once the
    /// scenario is over: a million readers' world is gigabytes, and the report reads only what
    /// was measured.
    pub fn shed(&self) {
        *self.clients.borrow_mut() = Vec::new();
        self.kv.borrow_mut().forget_keys();
        *self.queue.borrow_mut() = Default::default();
        self.waiting.borrow_mut().clear();
        for pop in &self.pops {
            pop.cache.borrow_mut().clear();
        }
    }

    /// Sockets open now.
    pub fn clients_open(&self) -> u64 {
        self.metrics.borrow().open
    }

    pub fn client_is_open(&self, c: &Client) -> bool {
        c.socket.is_some()
    }
}
