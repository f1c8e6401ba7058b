//! Calling the service's own handlers the way `main` does on Compute: a socket's
//! WebSocket-over-HTTP request through `router::handle`, the broadcast it may win through
//! `broadcast::claim` and, when the plan wakes, `broadcast::finish`; and the site's stored
//! total read through the service.

use liveuser_edge::count::broadcast::{self, Plan};
use liveuser_edge::wire::websocket_events::{self, Event};
use liveuser_edge::{surfaces::router, surfaces::Handled};

use super::queue::{Ev, Wake};
use super::World;
use crate::clock::EPOCH_US;
use crate::compute::{ComputeLimits, Meter, LIMITS};
use crate::kv::RequestOps;

/// The countries the POPs' readers are placed in (by POP, cycling).
const COUNTRIES: [&str; 12] = [
    "US", "DE", "GB", "JP", "BR", "IN", "FR", "AU", "CA", "SG", "ZA", "SE",
];

impl World {
    /// A new execution arriving at `t`, under Compute's limits.
    pub(super) fn meter(&self, t: u64) -> Meter {
        Meter::new(LIMITS, self.params.wasm_cpu_factor, t)
    }

    /// An execution ended at `t`: what it used goes into the metrics.
    pub(super) fn executed(&self, meter: &Meter, t: u64) {
        meter.check(t);
        self.measure().executed(t, meter.kind(), meter.usage());
    }

    /// Sends one WebSocket-over-HTTP request for client `c`'s socket; returns the reply and
    /// the request's end time.
    pub(super) fn call(
        &self,
        c: usize,
        t: u64,
        query: &str,
        events: &[Event],
    ) -> Option<(Handled, u64, RequestOps)> {
        self.commits.borrow_mut().clear();
        let (pop, req) = {
            let clients = self.clients.borrow();
            let client = &clients[c];
            let socket = client.socket.as_ref()?;
            let mut builder = http::Request::builder()
                .method("POST")
                .uri(format!("/ws{query}"))
                .header("Content-Type", websocket_events::CONTENT_TYPE)
                .header("Connection-Id", socket.conn_id.as_str())
                .header("Grip-Sig", self.token.as_str());
            for (name, value) in &socket.meta {
                builder = builder.header(format!("Meta-{name}"), value.as_str());
            }
            if self.params.countries && events.first() == Some(&Event::Open) {
                // The handoff's geolocation: each POP's readers in its own country, so presence
                // keys carry one as on Fastly and counts tally countries.
                builder = builder.header(
                    liveuser_edge::surfaces::handoff::COUNTRY_HEADER,
                    COUNTRIES[client.pop % COUNTRIES.len()],
                );
            }
            let req = builder
                .body(websocket_events::encode(events))
                .expect("a valid request");
            (client.pop, req)
        };
        let meter = self.meter(t);
        meter.set_kind(match events.first() {
            Some(Event::Open) => "socket opening",
            Some(Event::Text(_)) => "socket message",
            Some(Event::Close { .. }) | Some(Event::Disconnect) => "socket closing",
            _ => "socket request",
        });
        let (mut handled, ops, end) =
            self.with_services(pop, t, &meter, |services| router::handle(&req, services));
        if let Some(socket) = self.clients.borrow_mut()[c].socket.as_mut() {
            socket.busy_until_us = end;
        }
        if meter.killed().is_some() {
            // Compute answers a stopped execution with an error: Fanout drops the socket.
            handled = Handled::from(
                http::Response::builder()
                    .status(503)
                    .body(Vec::new())
                    .expect("a response"),
            );
        }
        match handled.broadcast.clone() {
            Some(plan) => self.claim_broadcast(pop, plan, end, meter),
            None => self.executed(&meter, t),
        }
        Some((handled, end, ops))
    }

    /// What `main` does once a request's reply is sent: claims the broadcast across POPs at
    /// once, then (if it won) finishes it when the plan wakes. The two halves run as separate
    /// events so the count sees every change made while it waited.
    pub(super) fn claim_broadcast(&self, pop: usize, plan: Plan, at: u64, meter: Meter) {
        meter.set_kind("broadcast claim");
        let (won, ops, end) = self.with_services(pop, at, &meter, |services| {
            broadcast::claim(services, &plan)
        });
        self.metrics
            .borrow_mut()
            .cost("broadcast claim", at, &ops.ops);
        if won == Ok(true) {
            let wake = plan.wake_at_ms(&self.config) as i64 * 1000 - self.pops[pop].skew_us;
            let id = self.next_execution.get();
            self.next_execution.set(id + 1);
            self.waiting.borrow_mut().insert(id, meter);
            self.schedule(
                (wake.max(0) as u64).max(end),
                Ev::Broadcast(Box::new(Wake {
                    pop,
                    plan,
                    execution: id,
                })),
            );
        } else {
            self.executed(&meter, end);
        }
    }

    pub(super) fn broadcast(&self, pop: usize, plan: &Plan, t: u64, execution: u64) {
        // The execution the plan belongs to (gone with its POP, if that died meanwhile).
        let Some(meter) = self.waiting.borrow_mut().remove(&execution) else {
            return;
        };
        let meter = &meter;
        if !self.pops[pop].alive.get() {
            return;
        }
        meter.set_kind("broadcast count");
        self.running_slot.set(plan.slot_end_ms);
        self.site_told.set(false);
        let (counted, ops, end) =
            self.with_services(pop, t, meter, |services| broadcast::finish(services, plan));
        self.executed(meter, end);
        let mut m = self.measure();
        m.cost("broadcast", t, &ops.ops);
        if counted.is_ok() && !self.site_told.get() {
            // Counted, and pages show that count as they show the last: every change before
            // the count is settled once the count is done.
            m.settled_unsent(ops.first_list_us.unwrap_or(t), end);
        }
        let count = counted.as_ref().ok().map(|c| c.count);
        // The slot's end in true time, less the clock margin between POPs.
        let slot_end = (plan.slot_end_ms as i64 * 1000 - 20_000).max(0) as u64;
        let counted_to = ops.last_list_us.unwrap_or(end);
        let over_open = count.map_or(0, |n| m.over_open(n, slot_end, counted_to));
        m.counts.push(crate::metrics::Count {
            at_us: t - EPOCH_US,
            count,
            over_open,
            keys_listed: ops.watched_keys,
            list_pages: ops.watched_pages,
        });
    }

    /// The site's total visits as the store holds them, read at POP 0 through the service.
    pub fn stored_total(&self) -> Option<u64> {
        // The report's own read, not a request anyone makes: no limits apply.
        let meter = Meter::new(ComputeLimits::unlimited(), 1.0, self.now.get());
        let (total, _, _) = self.with_services(0, self.now.get(), &meter, |services| {
            liveuser_edge::count::totals::settle(
                services.kv,
                &self.site,
                services.clock.now_ms(),
                false,
            )
            .ok()
            .map(|s| s.total)
        });
        total
    }
}
