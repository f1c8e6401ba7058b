//! The simulated host services a request is handed, behind the service's own traits: one
//! POP's view of the KV store and its cache, the publish API (items go to every POP's
//! subscribers), presence ids from the run's seed, and the service's log lines, counted.

use std::cell::{Cell, RefCell};

use liveuser_edge::count::presence;
use liveuser_edge::platform::config::ConfigSource;
use liveuser_edge::platform::ids::IdSource;
use liveuser_edge::platform::log::{Line, Log};
use liveuser_edge::platform::outbound::NoOutbound;
use liveuser_edge::platform::peers::{PeerError, Peers};
use liveuser_edge::platform::publisher::{PublishError, PublishItem, Publisher};
use liveuser_edge::platform::Services;
use liveuser_edge::surfaces::router;

use super::queue::{Delivery, Ev};
use super::World;
use crate::cache::PopCache;
use crate::clock::{RequestClock, EPOCH_US, MS};
use crate::compute::{Meter, LIMITS};
use crate::kv::{PopKv, RequestOps};
use crate::metrics::{Broadcast, Metrics};
use crate::replay::{NoLog, Recorder, Replay, Tape, Until};
use crate::rng::Rng;

/// The service's log lines, counted by kind (a lost visit or a failed delete shows in the
/// report), not printed.
struct SimLog<'a>(&'a RefCell<Metrics>);

impl Log for SimLog<'_> {
    fn emit(&self, line: &Line) {
        *self
            .0
            .borrow_mut()
            .log_lines
            .entry(line.kind().to_string())
            .or_insert(0) += 1;
    }
}

/// Presence ids from the run's seed.
struct SimIds<'a>(&'a Rng);

impl IdSource for SimIds<'_> {
    fn random_u64s(&self) -> [u64; 2] {
        [self.0.next_u64(), self.0.next_u64()]
    }
}

impl World {
    /// Runs `f` with the services of `pop` on a request clock starting at `t`, as one step of
    /// the execution `meter` follows. Every answer the host gives `f` is recorded, so that a
    /// CPU time that looks too large can be measured again by running `f` once more on the
    /// same answers (`replay`): `f` must do the same work each time it is run on them.
    pub(super) fn with_services<R>(
        &self,
        pop: usize,
        t: u64,
        meter: &Meter,
        f: impl Fn(&Services) -> R,
    ) -> (R, RequestOps, u64) {
        let clock = RequestClock::new(t, self.pops[pop].skew_us);
        let ops = Cell::new(RequestOps::default());
        let kv = PopKv {
            model: &self.kv,
            pop,
            clock: &clock,
            rng: &self.rng,
            params: &self.params,
            request: &ops,
            watch_prefix: "",
            commits: &self.commits,
            meter,
            distance: self.pops[pop].distance,
        };
        let watch = presence::site_prefix(&self.site);
        let kv = PopKv {
            watch_prefix: &watch,
            commits: &self.commits,
            ..kv
        };
        let cache = PopCache {
            model: &self.pops[pop].cache,
            clock: &clock,
            meter,
        };
        let publisher = SimPublisher {
            world: self,
            clock: &clock,
            ops: &ops,
            meter,
        };
        let ids = SimIds(&self.rng);
        let log = SimLog(&self.metrics);
        let peers = SimPeers {
            world: self,
            pop,
            clock: &clock,
            ops: &ops,
            meter,
        };
        let tape = Tape::new();
        // `f` again on the answers so far: its CPU time up to where it had got.
        let replay = |until: Until| {
            let r = Replay::new(&tape, until);
            let replayed = Services {
                config: &self.config,
                publisher: &r,
                kv: &r,
                cache: &r,
                clock: &r,
                ids: &r,
                grip: &self.grip,
                secrets: &self.secrets,
                settings: &self.settings as &dyn ConfigSource,
                log: &NoLog,
                peers: &r,
                // The simulated sites have no webhooks.
                outbound: &NoOutbound,
            };
            r.run(|| drop(f(&replayed)))
        };
        let remeasure = |call| replay(Until::Call(tape.len(), call));
        let recorder = Recorder {
            kv: &kv,
            cache: &cache,
            publisher: &publisher,
            clock: &clock,
            ids: &ids,
            peers: &peers,
            tape: &tape,
            meter,
            remeasure: &remeasure,
        };
        let services = Services {
            config: &self.config,
            publisher: &recorder,
            kv: &recorder,
            cache: &recorder,
            clock: &recorder,
            ids: &recorder,
            grip: &self.grip,
            secrets: &self.secrets,
            settings: &self.settings as &dyn ConfigSource,
            log: &log,
            peers: &recorder,
            outbound: &NoOutbound,
        };
        meter.begin_step();
        let result = f(&services);
        meter.finish_step(clock.now_us(), || replay(Until::End));
        (result, ops.get(), clock.now_us())
    }
}

/// `set-meta-presence-windows` → `Presence-Windows`, as Fanout sends meta back.
pub(super) fn canonical_meta(lower: &str) -> String {
    lower
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The publish API as one POP's request reaches it: items go to every POP's subscribers.
struct SimPublisher<'a> {
    world: &'a World,
    clock: &'a RequestClock,
    ops: &'a Cell<RequestOps>,
    meter: &'a Meter,
}

impl Publisher for SimPublisher<'_> {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        // A publish is a backend request (Compute allows so many per execution).
        if !self.meter.backend_request(self.clock.now_us())
            || !self.meter.host_call(self.clock.now_us())
        {
            return Err(PublishError::Unreachable(
                "execution stopped by Compute's limits".into(),
            ));
        }
        let result = self.deliver(items);
        self.meter.host_done(0);
        result
    }
}

impl SimPublisher<'_> {
    fn deliver(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        let w = self.world;
        let latency = w.params.publish.draw(&w.rng);
        self.clock.spend(latency / 2);
        let accepted_at = self.clock.now_us();
        self.clock.spend(latency - latency / 2);
        let site_channel = w.site.channel();
        let window = w.params.dedupe_window_ms * MS;
        for item in items {
            let new = w.fanout.borrow_mut().accept(
                &item.channel,
                item.id.as_deref(),
                accepted_at,
                window,
            );
            if !new {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&item.content).unwrap_or_default();
            let count = v["count"].as_u64().unwrap_or(0);
            let slot = v["slot"].as_u64();
            let mut last_delivery = accepted_at;
            for (pop, p) in w.pops.iter().enumerate() {
                if !p.alive.get() || w.fanout.borrow().subscribers(pop, &item.channel) == 0 {
                    continue;
                }
                let at = accepted_at + w.params.deliver.draw(&w.rng);
                last_delivery = last_delivery.max(at);
                w.schedule(
                    at,
                    Ev::Deliver(Box::new(Delivery {
                        pop,
                        channel: item.channel.clone(),
                        count,
                        slot,
                    })),
                );
            }
            if item.channel == site_channel {
                w.site_told.set(true);
                let ops = self.ops.get();
                let counted_us = ops.first_list_us.unwrap_or(accepted_at);
                let mut m = w.metrics.borrow_mut();
                // The slot's end in true time, less the clock margin between POPs.
                let slot_end = (w.running_slot.get() as i64 * 1000 - 20_000).max(0) as u64;
                let error = m.count_error(count, slot_end, ops.last_list_us.unwrap_or(counted_us));
                let excess = count as i64 - m.designed_at(counted_us);
                let over_open =
                    m.over_open(count, slot_end, ops.last_list_us.unwrap_or(counted_us));
                m.broadcast(
                    Broadcast {
                        slot_end_ms: w.running_slot.get(),
                        published_us: accepted_at - EPOCH_US,
                        counted_us,
                        count,
                        keys_listed: ops.watched_keys,
                        list_pages: ops.watched_pages,
                        error,
                        excess,
                        over_open,
                    },
                    last_delivery,
                );
            }
        }
        Ok(())
    }
}

/// Requests to the service itself (a split count's shares) as one POP's execution makes them:
/// each is a new execution at the same POP, under Compute's limits of its own, started a
/// self-call's latency later; they run side by side, and the caller waits for the last.
struct SimPeers<'a> {
    world: &'a World,
    pop: usize,
    clock: &'a RequestClock,
    ops: &'a Cell<RequestOps>,
    meter: &'a Meter,
}

impl Peers for SimPeers<'_> {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        let w = self.world;
        let start = self.clock.now_us();
        let stopped = || Err(PeerError("execution stopped by Compute's limits".into()));
        let allowed: Vec<bool> = requests
            .iter()
            .map(|_| self.meter.backend_request(start))
            .collect();
        if !self.meter.host_call(start) {
            return requests.iter().map(|_| stopped()).collect();
        }
        let mut done = start;
        let answers: Vec<Result<http::Response<Vec<u8>>, PeerError>> = requests
            .iter()
            .zip(allowed)
            .map(|(req, allowed)| {
                if !allowed {
                    return stopped();
                }
                let there = w.params.self_call.draw(&w.rng);
                let child = Meter::new(LIMITS, w.params.wasm_cpu_factor, start + there);
                child.set_kind("census share");
                let (handled, ops, end) =
                    w.with_services(self.pop, start + there, &child, |services| {
                        router::handle(req, services)
                    });
                w.executed(&child, end);
                self.ops.set(self.ops.get().merged(&ops));
                done = done.max(end + w.params.self_call.draw(&w.rng));
                if child.killed().is_some() || !w.pops[self.pop].alive.get() {
                    return Err(PeerError("the share's execution was stopped".into()));
                }
                Ok(handled.response)
            })
            .collect();
        self.clock.spend(done - start);
        let returned = answers
            .iter()
            .map(|a| a.as_ref().map_or(0, |r| r.body().capacity()))
            .sum();
        self.meter.host_done(returned);
        answers
    }
}
