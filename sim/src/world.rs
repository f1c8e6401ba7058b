//! The simulated network: POPs with their caches and Fanout sockets, one KV store, clients,
//! and an event queue on a virtual clock. Every request a client's socket causes is handed to
//! the service's own `router::handle`, exactly as `main` does on Compute; a broadcast a
//! request won runs through the service's own `broadcast::run` when `main` would wake for it.
//!
//! A request runs to completion at the virtual time it arrives, its own clock moving by the
//! latency of each host call; what it writes is seen by other POPs after the KV lag. Events
//! are ordered by (time, sequence), so a run is a pure function of its parameters and seed.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use liveuser_edge::broadcast::{self, Plan};
use liveuser_edge::config::{Config, ConfigSource};
use liveuser_edge::grip_sig::GripVerifier;
use liveuser_edge::ids::IdSource;
use liveuser_edge::log::{Line, Log};
use liveuser_edge::presence;
use liveuser_edge::publish::{PublishError, PublishItem, Publisher};
use liveuser_edge::site::SiteId;
use liveuser_edge::websocket_events::{self, Event};
use liveuser_edge::{router, Handled, Services};

use crate::cache::{CacheModel, PopCache};
use crate::clock::{RequestClock, EPOCH_US, MIN, MS, SEC};
use crate::fanout::FanoutModel;
use crate::kv::{KvModel, PopKv, RequestOps};
use crate::metrics::{Broadcast, KeySample, Metrics};
use crate::params::Params;
use crate::rng::Rng;

/// The Grip-Sig key the simulated Fanout signs with.
const GRIP_KEY: &[u8] = b"simulated-fanout-key";
/// How long after the last change the count must be exact on every page.
pub const SETTLED_AFTER_US: u64 = 2 * SEC;
/// A browser sends `join` this long after its OPEN was answered (one round trip).
const JOIN_DELAY_US: u64 = 40 * MS;

/// How a reader goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The tab closes: a WebSocket close, Fanout forwards CLOSE.
    Close,
    /// The network drops: Fanout notices and sends DISCONNECT.
    Disconnect,
    /// No event ever reaches the service.
    Vanish,
}

/// One POP.
pub struct Pop {
    pub alive: Cell<bool>,
    pub skew_us: i64,
    pub cache: RefCell<CacheModel>,
    /// Share of new readers that land here.
    pub weight: f64,
}

struct Socket {
    conn_id: String,
    meta: Vec<(String, String)>,
    channels: Vec<String>,
    /// Fanout sends a connection's requests one at a time: until the reply to the last one
    /// arrives, the next waits.
    busy_until_us: u64,
}

/// A reader: one browser tab.
pub struct Client {
    pub pop: usize,
    /// Shows total visits (subscribes to the totals channel, counts a visit at OPEN).
    pub totals: bool,
    /// Its next OPEN starts a page view.
    pub visit: bool,
    /// How long it stays once connected (`None`: until the scenario ends).
    pub stay_us: Option<u64>,
    pub leave: Leave,
    /// A reader that leaves is replaced by a new one (a steady audience).
    pub replaced: bool,
    generation: u32,
    socket: Option<Socket>,
}

#[derive(Debug, Clone)]
enum Ev {
    Arrive(usize),
    Join(usize, u32),
    Heartbeat(usize, u32),
    Leave(usize, u32),
    Broadcast(usize, Plan),
    Deliver {
        pop: usize,
        channel: String,
        count: u64,
    },
    Second,
    Minute,
    KillPop(usize),
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
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

pub struct World {
    pub params: Params,
    pub config: Config,
    settings: HashMap<String, String>,
    secrets: HashMap<String, Vec<u8>>,
    grip: GripVerifier,
    token: String,
    pub site: SiteId,
    pub kv: RefCell<KvModel>,
    pub pops: Vec<Pop>,
    pub fanout: RefCell<FanoutModel>,
    pub rng: Rng,
    queue: RefCell<BinaryHeap<Reverse<Queued>>>,
    seq: Cell<u64>,
    pub now: Cell<u64>,
    pub clients: RefCell<Vec<Client>>,
    pub metrics: RefCell<Metrics>,
    /// The count each POP's count-only pages show.
    shown: RefCell<Vec<Option<u64>>>,
    next_conn: Cell<u64>,
    /// The slot of the broadcast running now (its publishes belong to it).
    running_slot: Cell<u64>,
    /// No reader arrives or leaves any more (a quiet end, to see what pages settle on).
    frozen: Cell<bool>,
    /// Presence writes and deletes of the request running now, with their commit times.
    commits: RefCell<Vec<(String, u64)>>,
}

impl World {
    /// A network of POPs with the given shares of readers, running the service with `config`.
    pub fn new(params: &Params, config: Config, weights: &[f64]) -> World {
        let rng = Rng::new(params.seed);
        let pops = weights
            .iter()
            .map(|&weight| Pop {
                alive: Cell::new(true),
                skew_us: ((rng.unit() * 2.0 - 1.0) * params.clock_skew_ms as f64 * 1000.0) as i64,
                cache: RefCell::new(CacheModel::default()),
                weight,
            })
            .collect();
        let issuer = "pushpin";
        let token = liveuser_testkit::jwt::hs256_token(
            GRIP_KEY,
            issuer,
            EPOCH_US / SEC + 10 * 365 * 86_400,
        );
        let world = World {
            params: params.clone(),
            config,
            settings: HashMap::new(),
            secrets: HashMap::new(),
            grip: GripVerifier::hs256(GRIP_KEY, issuer),
            token,
            site: SiteId::parse("site").expect("a valid site id"),
            kv: RefCell::new(KvModel::new(params)),
            pops,
            fanout: RefCell::new(FanoutModel::default()),
            rng,
            queue: RefCell::new(BinaryHeap::new()),
            seq: Cell::new(0),
            now: Cell::new(EPOCH_US),
            clients: RefCell::new(Vec::new()),
            metrics: RefCell::new(Metrics::default()),
            shown: RefCell::new(vec![None; weights.len()]),
            next_conn: Cell::new(0),
            running_slot: Cell::new(0),
            frozen: Cell::new(false),
            commits: RefCell::new(Vec::new()),
        };
        world.schedule(EPOCH_US + SEC, Ev::Second);
        world.schedule(EPOCH_US + MIN, Ev::Minute);
        world
    }

    /// Time since the run started, in microseconds.
    pub fn elapsed(&self) -> u64 {
        self.now.get() - EPOCH_US
    }

    fn schedule(&self, at: u64, ev: Ev) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.queue
            .borrow_mut()
            .push(Reverse(Queued { at, seq, ev }));
    }

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

    /// Kills a POP `after_us` from now: its sockets vanish, its cache is lost.
    pub fn kill_pop(&self, pop: usize, after_us: u64) {
        self.schedule(self.now.get() + after_us, Ev::KillPop(pop));
    }

    /// Runs every event up to `until_us` after the start.
    pub fn run_for(&self, duration_us: u64) {
        let until = self.now.get() + duration_us;
        loop {
            let next = {
                let mut q = self.queue.borrow_mut();
                match q.peek() {
                    Some(Reverse(item)) if item.at <= until => q.pop().map(|Reverse(i)| i),
                    _ => None,
                }
            };
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

    /// From now on nobody arrives or leaves; heartbeats go on.
    pub fn freeze(&self) {
        self.frozen.set(true);
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
                let body = format!(
                    r#"{{"type":"heartbeat","siteId":"site","clientId":"c","timestamp":{}}}"#,
                    t / MS
                );
                if self.text(c, g, t, "heartbeat", &body) {
                    let next = t + u64::from(self.config.heartbeat_interval_secs) * SEC;
                    self.schedule(next, Ev::Heartbeat(c, g));
                }
            }
            Ev::Leave(c, g) => self.leave(c, g, t),
            Ev::Broadcast(pop, plan) => self.broadcast(pop, &plan, t),
            Ev::Deliver {
                pop,
                channel,
                count,
            } => self.deliver(pop, &channel, count, t),
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

    /// Runs `f` with the services of `pop` on a request clock starting at `t`.
    fn with_services<R>(
        &self,
        pop: usize,
        t: u64,
        f: impl FnOnce(&Services, &RequestClock) -> R,
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
        };
        let publisher = SimPublisher {
            world: self,
            clock: &clock,
            ops: &ops,
        };
        let ids = SimIds(&self.rng);
        let log = SimLog(&self.metrics);
        let services = Services {
            config: &self.config,
            publisher: &publisher,
            kv: &kv,
            cache: &cache,
            clock: &clock,
            ids: &ids,
            grip: &self.grip,
            secrets: &self.secrets,
            settings: &self.settings as &dyn ConfigSource,
            log: &log,
        };
        let result = f(&services, &clock);
        (result, ops.get(), clock.now_us())
    }

    /// Sends one WebSocket-over-HTTP request for client `c`'s socket; returns the reply and
    /// the request's end time.
    fn call(
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
            let req = builder
                .body(websocket_events::encode(events))
                .expect("a valid request");
            (client.pop, req)
        };
        let (handled, ops, end) =
            self.with_services(pop, t, |services, _| router::handle(&req, services));
        if let Some(socket) = self.clients.borrow_mut()[c].socket.as_mut() {
            socket.busy_until_us = end;
        }
        if let Some(plan) = handled.broadcast.clone() {
            self.claim_broadcast(pop, plan, end);
        }
        Some((handled, end, ops))
    }

    /// Applies a reply to the client's socket: meta, subscriptions. Returns (accepted, closed).
    fn apply(&self, c: usize, handled: &Handled) -> (bool, bool) {
        let mut clients = self.clients.borrow_mut();
        let client = &mut clients[c];
        let pop = client.pop;
        let Some(socket) = client.socket.as_mut() else {
            return (false, true);
        };
        if handled.response.status() != 200 {
            return (false, true);
        }
        for (name, value) in handled.response.headers() {
            let Some(meta) = name.as_str().strip_prefix("set-meta-") else {
                continue;
            };
            let value = value.to_str().unwrap_or("").to_string();
            let key = canonical_meta(meta);
            socket.meta.retain(|(n, _)| *n != key);
            if !value.is_empty() {
                socket.meta.push((key, value));
            }
        }
        let (mut accepted, mut closed) = (false, false);
        let events = websocket_events::parse(handled.response.body()).unwrap_or_default();
        for event in events {
            match event {
                Event::Open => accepted = true,
                Event::Close { .. } => closed = true,
                Event::Text(text) => {
                    if let Some(control) = text.strip_prefix("c:") {
                        let v: serde_json::Value =
                            serde_json::from_str(control).unwrap_or_default();
                        let channel = v["channel"].as_str().unwrap_or("").to_string();
                        match v["type"].as_str() {
                            Some("subscribe") => {
                                self.fanout.borrow_mut().subscribe(pop, &channel);
                                socket.channels.push(channel);
                            }
                            Some("unsubscribe") => {
                                self.fanout.borrow_mut().unsubscribe(pop, &channel);
                                socket.channels.retain(|ch| *ch != channel);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        (accepted, closed)
    }

    /// Removes the client's socket (and its subscriptions); returns its newest presence expiry
    /// in true time.
    fn drop_socket(&self, c: usize) -> Option<u64> {
        let mut clients = self.clients.borrow_mut();
        let client = &mut clients[c];
        let socket = client.socket.take()?;
        client.generation += 1;
        let mut fanout = self.fanout.borrow_mut();
        for ch in &socket.channels {
            fanout.unsubscribe(client.pop, ch);
        }
        let skew = self.pops[client.pop].skew_us;
        let expiry = socket
            .meta
            .iter()
            .find(|(n, _)| n == "Presence-Exp")
            .and_then(|(_, v)| v.split(',').filter_map(|e| e.parse::<i64>().ok()).max())
            .map(|ms| (ms * 1000 - skew).max(0) as u64);
        expiry
    }

    fn arrive(&self, c: usize, t: u64) {
        let (pop, query) = {
            let mut clients = self.clients.borrow_mut();
            let client = &mut clients[c];
            if !self.pops[client.pop].alive.get() {
                client.pop = self.pick_pop();
            }
            let n = self.next_conn.get();
            self.next_conn.set(n + 1);
            client.socket = Some(Socket {
                conn_id: format!("conn-{n}"),
                meta: Vec::new(),
                channels: Vec::new(),
                busy_until_us: 0,
            });
            let query = format!(
                "?siteId=site&clientId=c{c}&enableTotalCount={}&visit={}",
                client.totals,
                if client.visit { 1 } else { 0 }
            );
            (client.pop, query)
        };
        let Some((handled, end, ops)) = self.call(c, t, &query, &[Event::Open]) else {
            return;
        };
        self.metrics.borrow_mut().cost("OPEN", t, &ops.ops);
        let (accepted, closed) = self.apply(c, &handled);
        if !accepted || closed {
            self.drop_socket(c);
            self.metrics.borrow_mut().refused_opens += 1;
            return;
        }
        let (generation, stay, visit) = {
            let mut clients = self.clients.borrow_mut();
            let client = &mut clients[c];
            let visit = client.totals && client.visit;
            client.visit = false;
            (client.generation, client.stay_us, visit)
        };
        let mut m = self.metrics.borrow_mut();
        m.opened(t, ops.watched_commit_us.unwrap_or(end));
        if visit {
            m.visits_accepted += 1;
        }
        drop(m);
        let _ = pop;
        self.schedule(end + JOIN_DELAY_US, Ev::Join(c, generation));
        let interval = u64::from(self.config.heartbeat_interval_secs) * SEC;
        self.schedule(end + interval, Ev::Heartbeat(c, generation));
        if let Some(stay) = stay {
            self.schedule(t + stay, Ev::Leave(c, generation));
        }
    }

    /// Client `c`'s presence id and lease expiries (ms, its POP's clock), from its meta.
    fn lease_of(&self, c: usize) -> Option<(String, Vec<u64>)> {
        let clients = self.clients.borrow();
        let meta = &clients[c].socket.as_ref()?.meta;
        let get = |name: &str| meta.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let expiries = get("Presence-Exp")?
            .split(',')
            .filter_map(|e| e.parse().ok())
            .collect();
        Some((get("Presence-Id")?, expiries))
    }

    /// When the request that just ran stopped `lease` from counting: each key counts until its
    /// delete committed or it expired, the connection until its last key stops.
    fn uncounted_at(&self, pop: usize, lease: Option<(String, Vec<u64>)>, fallback: u64) -> u64 {
        let Some((id, expiries)) = lease else {
            return fallback;
        };
        let commits = self.commits.borrow();
        let skew = self.pops[pop].skew_us;
        expiries
            .iter()
            .map(|&e| {
                let key = presence::key(&self.site, &id, e);
                let expiry = (e as i64 * 1000 - skew).max(0) as u64;
                commits
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, at)| (*at).min(expiry))
                    .max()
                    .unwrap_or(expiry)
            })
            .max()
            .unwrap_or(fallback)
    }

    fn current(&self, c: usize, generation: u32) -> bool {
        let clients = self.clients.borrow();
        clients[c].generation == generation && clients[c].socket.is_some()
    }

    /// A TEXT message from client `c`; false when its socket is gone.
    fn text(&self, c: usize, generation: u32, t: u64, kind: &'static str, text: &str) -> bool {
        if !self.current(c, generation) {
            return false;
        }
        let lease = self.lease_of(c);
        let pop = self.clients.borrow()[c].pop;
        let Some((handled, _, ops)) = self.call(c, t, "", &[Event::Text(text.to_string())]) else {
            return false;
        };
        self.metrics.borrow_mut().cost(kind, t, &ops.ops);
        let (_, closed) = self.apply(c, &handled);
        if closed {
            // The service closed the socket (or refused the request: Fanout drops it).
            let gone = self.uncounted_at(pop, lease, t);
            let expiry = self.drop_socket(c);
            let mut m = self.metrics.borrow_mut();
            m.server_closes += 1;
            if handled.response.status() == 200 {
                m.closed(t, gone);
            } else {
                m.vanished(t, expiry.unwrap_or(t));
            }
            return false;
        }
        true
    }

    fn leave(&self, c: usize, generation: u32, t: u64) {
        if !self.current(c, generation) {
            return;
        }
        let how = self.clients.borrow()[c].leave;
        match how {
            Leave::Close | Leave::Disconnect => {
                let (kind, event) = if how == Leave::Close {
                    ("CLOSE", Event::close(1000, ""))
                } else {
                    ("DISCONNECT", Event::Disconnect)
                };
                let lease = self.lease_of(c);
                let pop = self.clients.borrow()[c].pop;
                let ops = match self.call(c, t, "", &[event]) {
                    Some((_, _, ops)) => ops,
                    None => RequestOps::default(),
                };
                self.metrics.borrow_mut().cost(kind, t, &ops.ops);
                let gone = self.uncounted_at(pop, lease, t);
                self.drop_socket(c);
                self.metrics.borrow_mut().closed(t, gone);
            }
            Leave::Vanish => {
                let expiry = self.drop_socket(c);
                self.metrics.borrow_mut().vanished(t, expiry.unwrap_or(t));
            }
        }
        if self.clients.borrow()[c].replaced {
            let stay = self.rng.exp(self.params.mean_stay_ms as f64 * 1000.0) as u64;
            let reader = self.reader(Some(stay), true);
            self.add_client(reader, self.rng.below(SEC));
        }
    }

    fn kill(&self, pop: usize, t: u64) {
        let pop_ref = &self.pops[pop];
        pop_ref.alive.set(false);
        pop_ref.cache.borrow_mut().clear();
        self.fanout.borrow_mut().drop_pop(pop);
        self.shown.borrow_mut()[pop] = None;
        let victims: Vec<usize> = self
            .clients
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.pop == pop && c.socket.is_some())
            .map(|(i, _)| i)
            .collect();
        for c in victims {
            // The socket dies with the POP: no CLOSE, no DISCONNECT. Fanout's subscriptions
            // there are gone already.
            let expiry = {
                let mut clients = self.clients.borrow_mut();
                let client = &mut clients[c];
                client.generation += 1;
                let skew = pop_ref.skew_us;
                client.socket.take().and_then(|s| {
                    s.meta
                        .iter()
                        .find(|(n, _)| n == "Presence-Exp")
                        .and_then(|(_, v)| v.split(',').filter_map(|e| e.parse::<i64>().ok()).max())
                        .map(|ms| (ms * 1000 - skew).max(0) as u64)
                })
            };
            self.metrics.borrow_mut().vanished(t, expiry.unwrap_or(t));
            // The browser notices and reconnects elsewhere, without counting a new visit.
            let at = t + self.rng.below(self.params.reconnect_max_ms * MS);
            self.schedule(at, Ev::Arrive(c));
        }
    }

    /// What `main` does once a request's reply is sent: claims the broadcast across POPs at
    /// once, then (if it won) finishes it when the plan wakes. The two halves run as separate
    /// events so the count sees every change made while it waited.
    fn claim_broadcast(&self, pop: usize, plan: Plan, at: u64) {
        let (won, ops, end) =
            self.with_services(pop, at, |services, _| broadcast::claim(services, &plan));
        self.metrics
            .borrow_mut()
            .cost("broadcast claim", at, &ops.ops);
        if won == Ok(true) {
            let wake = plan.wake_at_ms(&self.config) as i64 * 1000 - self.pops[pop].skew_us;
            self.schedule((wake.max(0) as u64).max(end), Ev::Broadcast(pop, plan));
        }
    }

    fn broadcast(&self, pop: usize, plan: &Plan, t: u64) {
        if !self.pops[pop].alive.get() {
            return;
        }
        self.running_slot.set(plan.slot_end_ms);
        let (_, ops, _) =
            self.with_services(pop, t, |services, _| broadcast::finish(services, plan));
        let mut m = self.metrics.borrow_mut();
        m.cost("broadcast", t, &ops.ops);
        m.counts.push(crate::metrics::Count {
            at_us: t - EPOCH_US,
            keys_listed: ops.ops.keys_listed,
            list_pages: ops.ops.list_pages,
        });
    }

    fn deliver(&self, pop: usize, channel: &str, count: u64, t: u64) {
        if !self.pops[pop].alive.get() {
            return;
        }
        let n = self.fanout.borrow().subscribers(pop, channel);
        self.metrics.borrow_mut().delivered(t, n);
        if channel == self.site.channel() {
            self.shown.borrow_mut()[pop] = Some(count);
        }
    }

    fn sample_second(&self, t: u64) {
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

    fn sample_minute(&self, t: u64) {
        self.kv.borrow_mut().collect_garbage(t);
        for p in &self.pops {
            p.cache.borrow_mut().collect_garbage(t);
        }
        let groups = self
            .kv
            .borrow()
            .listed_by_segment(&presence::site_prefix(&self.site), t);
        let clients = self.clients.borrow();
        let max_per_connection = clients
            .iter()
            .filter_map(|c| c.socket.as_ref())
            .filter_map(|s| s.meta.iter().find(|(n, _)| n == "Presence-Id"))
            .map(|(_, id)| groups.get(id).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let mut m = self.metrics.borrow_mut();
        let open = m.open;
        m.key_samples.push(KeySample {
            at_us: t - EPOCH_US,
            open,
            listed_keys: groups.values().map(|&n| u64::from(n)).sum(),
            max_per_connection,
        });
    }

    /// Sockets open now.
    pub fn clients_open(&self) -> u64 {
        self.metrics.borrow().open
    }

    pub fn client_is_open(&self, c: &Client) -> bool {
        c.socket.is_some()
    }

    /// The site's total visits as the store holds them, read at POP 0 through the service.
    pub fn stored_total(&self) -> Option<u64> {
        let (total, _, _) = self.with_services(0, self.now.get(), |services, _| {
            liveuser_edge::totals::settle(services.kv, &self.site, services.clock.now_ms(), false)
                .ok()
                .map(|s| s.total)
        });
        total
    }
}

/// `set-meta-presence-exp` → `Presence-Exp`, as Fanout sends meta back.
fn canonical_meta(lower: &str) -> String {
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
}

impl Publisher for SimPublisher<'_> {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
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
            let mut last_delivery = accepted_at;
            for (pop, p) in w.pops.iter().enumerate() {
                if !p.alive.get() || w.fanout.borrow().subscribers(pop, &item.channel) == 0 {
                    continue;
                }
                let at = accepted_at + w.params.deliver.draw(&w.rng);
                last_delivery = last_delivery.max(at);
                w.schedule(
                    at,
                    Ev::Deliver {
                        pop,
                        channel: item.channel.clone(),
                        count,
                    },
                );
            }
            if item.channel == site_channel {
                let ops = self.ops.get();
                let counted_us = ops.first_list_us.unwrap_or(accepted_at);
                let mut m = w.metrics.borrow_mut();
                // The slot's end in true time, less the clock margin between POPs.
                let slot_end = (w.running_slot.get() as i64 * 1000 - 20_000).max(0) as u64;
                let error = m.count_error(count, slot_end, ops.last_list_us.unwrap_or(counted_us));
                let excess = count as i64 - m.designed_at(counted_us);
                m.broadcast(
                    Broadcast {
                        slot_end_ms: w.running_slot.get(),
                        published_us: accepted_at - EPOCH_US,
                        counted_us,
                        count,
                        keys_listed: ops.ops.keys_listed,
                        list_pages: ops.ops.list_pages,
                        error,
                        excess,
                    },
                    last_delivery,
                );
            }
        }
        Ok(())
    }
}
