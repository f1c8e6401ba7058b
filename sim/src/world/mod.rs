//! The simulated network: POPs with their caches and Fanout sockets, one KV store, clients,
//! and an event queue on a virtual clock. Every request a client's socket causes is handed to
//! the service's own `router::handle`, exactly as `main` does on Compute; a broadcast a
//! request won runs through the service's own `broadcast::run` when `main` would wake for it.
//!
//! A request runs to completion at the virtual time it arrives, its own clock moving by the
//! latency of each host call; what it writes is seen by other POPs after the KV lag. Events
//! are ordered by (time, sequence), so a run is a pure function of its parameters and seed.
//!
//! This folder owns the world: its parts (POPs, readers and their sockets), its event queue
//! and loop, the service's handlers called the way `main` calls them, and the host services
//! they are handed. Its files, each using only those listed before it: `queue` (what can
//! happen, in what order), this file (the world's parts and its constructor), `audience`
//! (what a scenario asks of the world and reads back), `host` (the simulated host services),
//! `service` (calling the service's handlers: a socket's requests, broadcasts), `measure`
//! (what pages show and the samples taken each second and minute), `readers` (what a
//! reader's socket does: open, join, heartbeat, leave, die with its POP) and `run` (the loop
//! that takes events in order and hands each to its file). It may use the crate's models
//! (`cache`, `clock`, `fanout`, `kv`, `metrics`, `params`, `rng`), the service and the test
//! kit; the scenarios and the report use it, never the reverse.

mod audience;
mod host;
mod measure;
mod queue;
mod readers;
mod run;
mod service;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use liveuser_edge::platform::config::Config;
use liveuser_edge::wire::grip_sig::GripVerifier;
use liveuser_edge::wire::site::SiteId;

use crate::cache::CacheModel;
use crate::clock::{EPOCH_US, MIN, MS, SEC};
use crate::compute::Meter;
use crate::fanout::FanoutModel;
use crate::kv::KvModel;
use crate::metrics::Metrics;
use crate::params::Params;
use crate::rng::Rng;

use queue::{Ev, Queue, Queued};

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
    /// How far it is from the KV store's primary, from 0 (next to it) to 1 (farthest).
    pub distance: f64,
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
    /// A reader that leaves is replaced by a new one (a steady audience), of the same site,
    /// staying `mean_stay_us` on average.
    pub replaced: bool,
    pub mean_stay_us: u64,
    /// Which site it reads: 0 for the measured site, `n` for the n-th small site beside it
    /// (whose readers load the store, the POPs and Fanout, but are not measured).
    pub site: usize,
    /// Its heartbeats are aggregated: the handler's presence work is called directly, not
    /// through a WebSocket-over-HTTP request (see `readers`). Opens, joins and leaves are not.
    pub aggregated: bool,
    /// The presence its dead socket held (id, and when it expires): its reconnect names it.
    resume: Option<(String, u64)>,
    generation: u32,
    socket: Option<Socket>,
}

pub struct World {
    pub params: Params,
    pub config: Config,
    settings: HashMap<String, String>,
    secrets: HashMap<String, Vec<u8>>,
    grip: GripVerifier,
    token: String,
    pub site: SiteId,
    /// Every site readers read: `sites[0]` is `site`, the measured one.
    pub sites: Vec<SiteId>,
    pub kv: RefCell<KvModel>,
    pub pops: Vec<Pop>,
    pub fanout: RefCell<FanoutModel>,
    pub rng: Rng,
    queue: RefCell<Queue>,
    seq: Cell<u64>,
    pub now: Cell<u64>,
    pub clients: RefCell<Vec<Client>>,
    pub metrics: RefCell<Metrics>,
    /// Where the small sites' figures go: nowhere anyone reads.
    scratch: RefCell<Metrics>,
    /// The count each POP's count-only pages show, and the slot it was counted for.
    shown: RefCell<Vec<Option<u64>>>,
    shown_slot: RefCell<Vec<Option<u64>>>,
    next_conn: Cell<u64>,
    /// The slot of the broadcast running now (its publishes belong to it).
    running_slot: Cell<u64>,
    /// Whether the broadcast running now told the site's channel its count (a count pages
    /// would show as they do is not sent).
    site_told: Cell<bool>,
    /// No reader arrives or leaves any more (a quiet end, to see what pages settle on).
    frozen: Cell<bool>,
    /// Presence writes and deletes of the request running now, with their commit times.
    commits: RefCell<Vec<(String, u64)>>,
    /// Executions waiting for their broadcast to wake, by number, and the next number.
    waiting: RefCell<HashMap<u64, Meter>>,
    next_execution: Cell<u64>,
    /// Whether what runs now is the measured site's (its costs, executions and messages go
    /// into the metrics) or a small site's beside it.
    measured: Cell<bool>,
}

impl World {
    /// A network of POPs with the given shares of readers, running the service with `config`.
    pub fn new(params: &Params, config: Config, weights: &[f64]) -> World {
        World::with_small_sites(params, config, weights, 0)
    }

    /// [`World::new`], with `small` more sites beside the measured one (`small-1`, …).
    pub fn with_small_sites(
        params: &Params,
        config: Config,
        weights: &[f64],
        small: usize,
    ) -> World {
        let rng = Rng::new(params.seed);
        let pops = weights
            .iter()
            .map(|&weight| Pop {
                alive: Cell::new(true),
                skew_us: ((rng.unit() * 2.0 - 1.0) * params.clock_skew_ms as f64 * 1000.0) as i64,
                cache: RefCell::new(CacheModel::default()),
                weight,
                distance: rng.unit(),
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
            // The Grip key, as the local stack's secret store holds it (census requests are
            // signed with a key derived from it).
            secrets: HashMap::from([(
                liveuser_edge::platform::fastly_toml::GRIP_KEY_SECRET.to_string(),
                GRIP_KEY.to_vec(),
            )]),
            grip: GripVerifier::hs256(GRIP_KEY, issuer),
            token,
            site: SiteId::parse("site").expect("a valid site id"),
            sites: std::iter::once("site".to_string())
                .chain((1..=small).map(|n| format!("small-{n}")))
                .map(|s| SiteId::parse(&s).expect("a valid site id"))
                .collect(),
            kv: RefCell::new(KvModel::new(params).measuring("site")),
            pops,
            fanout: RefCell::new(FanoutModel::default()),
            rng,
            queue: RefCell::new(Queue::default()),
            seq: Cell::new(0),
            now: Cell::new(EPOCH_US),
            clients: RefCell::new(Vec::new()),
            metrics: RefCell::new(Metrics::default()),
            scratch: RefCell::new(Metrics::default()),
            shown: RefCell::new(vec![None; weights.len()]),
            shown_slot: RefCell::new(vec![None; weights.len()]),
            next_conn: Cell::new(0),
            running_slot: Cell::new(0),
            site_told: Cell::new(false),
            frozen: Cell::new(false),
            commits: RefCell::new(Vec::new()),
            waiting: RefCell::new(HashMap::new()),
            next_execution: Cell::new(0),
            measured: Cell::new(true),
        };
        world.schedule(EPOCH_US + SEC, Ev::Second);
        world.schedule(EPOCH_US + MIN, Ev::Minute);
        world
    }

    /// Runs `f` accounted to the measured site (its costs go into the metrics) or not.
    fn accounted<R>(&self, measured: bool, f: impl FnOnce() -> R) -> R {
        let before = self.measured.replace(measured);
        let result = f();
        self.measured.set(before);
        result
    }

    /// The metrics what runs now is measured into (a small site's go to a scratch copy).
    fn measure(&self) -> std::cell::RefMut<'_, Metrics> {
        if self.measured.get() {
            self.metrics.borrow_mut()
        } else {
            self.scratch.borrow_mut()
        }
    }

    /// Time since the run started, in microseconds.
    pub fn elapsed(&self) -> u64 {
        self.now.get() - EPOCH_US
    }

    fn schedule(&self, at: u64, ev: Ev) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.queue.borrow_mut().push(Queued { at, seq, ev });
    }
}
