//! The event loop: events are taken in (time, sequence) order and each is handed to the part
//! of the world it concerns; a socket still busy with a request holds its next one back.

use super::queue::Ev;
use super::World;
use crate::clock::{MIN, MS, SEC};

impl World {
    /// Runs every event up to `until_us` after the start.
    pub fn run_for(&self, duration_us: u64) {
        let until = self.now.get() + duration_us;
        loop {
            let next = self.queue.borrow_mut().pop_until(until);
            let Some(item) = next else { break };
            self.now.set(item.at);
            self.dispatch(item.ev);
        }
        self.now.set(until);
    }

    /// When client `c`'s socket can take its next request, if it is still busy with one.
    fn busy_until(&self, c: usize) -> Option<u64> {
        let clients = self.clients.borrow();
        let socket = clients[c].socket.as_ref()?;
        (socket.busy_until_us > self.now.get()).then_some(socket.busy_until_us)
    }

    fn dispatch(&self, ev: Ev) {
        let t = self.now.get();
        if self.frozen.get() && matches!(ev, Ev::Arrive(_) | Ev::Leave(..)) {
            return;
        }
        if let Ev::Join(c, _) | Ev::Heartbeat(c, _) | Ev::Leave(c, _) = ev {
            if let Some(at) = self.busy_until(c) {
                self.schedule(at, ev);
                return;
            }
        }
        let measured = match &ev {
            Ev::Arrive(c) | Ev::Join(c, _) | Ev::Heartbeat(c, _) | Ev::Leave(c, _) => {
                self.clients.borrow()[*c].site == 0
            }
            Ev::Broadcast(wake) => wake.plan.site == self.site,
            _ => true,
        };
        self.accounted(measured, || self.take(ev, t));
    }

    fn take(&self, ev: Ev, t: u64) {
        match ev {
            Ev::Arrive(c) => self.arrive(c, t),
            Ev::Join(c, g) => {
                self.text(
                    c,
                    g,
                    t,
                    "join",
                    r#"{"type":"join","siteId":"site","clientId":"c"}"#,
                );
            }
            Ev::Heartbeat(c, g) => {
                let aggregated = self.clients.borrow()[c].aggregated;
                let alive = if aggregated {
                    self.aggregated_heartbeat(c, g, t)
                } else {
                    let body = format!(
                        r#"{{"type":"heartbeat","siteId":"site","clientId":"c","timestamp":{}}}"#,
                        t / MS
                    );
                    self.text(c, g, t, "heartbeat", &body)
                };
                if alive {
                    let next = t + u64::from(self.config.heartbeat_interval_secs) * SEC;
                    self.schedule(next, Ev::Heartbeat(c, g));
                }
            }
            Ev::Leave(c, g) => self.leave(c, g, t),
            Ev::Broadcast(wake) => self.broadcast(wake.pop, &wake.plan, t, wake.execution),
            Ev::Deliver(d) => self.deliver(d.pop, &d.channel, d.count, d.slot, t),
            Ev::Second => {
                self.sample_second(t);
                self.schedule(t + SEC, Ev::Second);
            }
            Ev::Minute => {
                self.sample_minute(t);
                self.schedule(t + MIN, Ev::Minute);
            }
            Ev::KillPop(pop) => self.kill(pop, t),
        }
    }
}
