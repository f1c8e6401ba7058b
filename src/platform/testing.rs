//! Fakes of the host services, for unit tests.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::platform::cache::{CacheFailed, SharedCache};
use crate::platform::clock::Clock;
use crate::platform::config::Config;
use crate::platform::ids::IdSource;
use crate::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use crate::platform::log::{Line, Log};
use crate::platform::outbound::{Outbound, OutboundError};
use crate::platform::peers::{PeerError, Peers};
use crate::platform::publisher::{PublishError, PublishItem, Publisher};
use crate::platform::Services;
use crate::wire::grip_sig::GripVerifier;

/// An in-memory KV store that, like production, never drops expired keys by itself.
pub struct MemoryKv {
    entries: RefCell<BTreeMap<String, Entry>>,
    /// The TTL each key was last written with (`None`: none, the key stays for good).
    ttls: RefCell<BTreeMap<String, Option<u32>>>,
    next_generation: Cell<u64>,
    page_size: usize,
}

impl Default for MemoryKv {
    fn default() -> Self {
        MemoryKv::with_page_size(crate::platform::kv::LIST_PAGE as usize)
    }
}

impl MemoryKv {
    pub fn with_page_size(page_size: usize) -> Self {
        MemoryKv {
            entries: RefCell::new(BTreeMap::new()),
            ttls: RefCell::new(BTreeMap::new()),
            next_generation: Cell::new(1),
            page_size,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }

    /// The keys held that were last written with no TTL: they would stay for good.
    pub fn keys_without_ttl(&self) -> Vec<String> {
        let ttls = self.ttls.borrow();
        self.keys()
            .into_iter()
            .filter(|k| ttls.get(k).copied().flatten().is_none())
            .collect()
    }

    /// The TTL `key` was last written with.
    pub fn ttl_of(&self, key: &str) -> Option<u32> {
        self.ttls.borrow().get(key).copied().flatten()
    }
}

impl KvStore for MemoryKv {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map(|e| e.generation);
        match (mode, current) {
            (WriteMode::AddOnly, Some(_)) => return Err(KvError::PreconditionFailed),
            (WriteMode::IfGeneration(g), Some(c)) if g != c => {
                return Err(KvError::PreconditionFailed)
            }
            (WriteMode::IfGeneration(_), None) => return Err(KvError::PreconditionFailed),
            _ => {}
        }
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        entries.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                generation,
            },
        );
        self.ttls.borrow_mut().insert(key.to_string(), ttl_secs);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        let page_size = self.page_size.min(limit as usize);
        let entries = self.entries.borrow();
        let keys: Vec<String> = entries
            .keys()
            .filter(|k| k.starts_with(prefix))
            .filter(|k| cursor.is_none_or(|c| k.as_str() > c))
            .take(page_size + 1)
            .cloned()
            .collect();
        let more = keys.len() > page_size;
        let keys: Vec<String> = keys.into_iter().take(page_size).collect();
        let next_cursor = if more { keys.last().cloned() } else { None };
        Ok(ListPage { keys, next_cursor })
    }
}

/// A log that keeps its lines, for tests to read.
#[derive(Default)]
pub struct RecordingLog {
    lines: RefCell<Vec<String>>,
}

impl RecordingLog {
    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.borrow().clone()
    }
}

impl Log for RecordingLog {
    fn emit(&self, line: &Line) {
        self.lines.borrow_mut().push(line.to_string());
    }
}

/// A publisher that records what it was asked to publish: items for readers' channels in
/// `published`, those for owners' dashboards apart, in `dashboards`.
#[derive(Default)]
pub struct RecordingPublisher {
    pub published: RefCell<Vec<PublishItem>>,
    pub dashboards: RefCell<Vec<PublishItem>>,
}

impl Publisher for RecordingPublisher {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        for item in items {
            let dashboard = item
                .channel
                .starts_with(crate::wire::site::DASHBOARD_CHANNEL_PREFIX);
            let to = if dashboard {
                &self.dashboards
            } else {
                &self.published
            };
            to.borrow_mut().push(item.clone());
        }
        Ok(())
    }
}

/// Webhook receivers: every request kept, each answered by the next of `answers` (204 once
/// they run out).
#[derive(Default)]
pub struct RecordingOutbound {
    pub sent: RefCell<Vec<http::Request<Vec<u8>>>>,
    pub answers: RefCell<VecDeque<Result<u16, OutboundError>>>,
}

impl Outbound for RecordingOutbound {
    fn send_all(&self, requests: Vec<http::Request<Vec<u8>>>) -> Vec<Result<u16, OutboundError>> {
        requests
            .into_iter()
            .map(|req| {
                self.sent.borrow_mut().push(req);
                self.answers.borrow_mut().pop_front().unwrap_or(Ok(204))
            })
            .collect()
    }
}

/// A KV store that cannot be reached: every operation fails.
pub struct FailingKv;

impl KvStore for FailingKv {
    fn lookup(&self, _: &str) -> Result<Option<Entry>, KvError> {
        Err(KvError::Other("unreachable".into()))
    }

    fn insert(&self, _: &str, _: &[u8], _: Option<u32>, _: WriteMode) -> Result<(), KvError> {
        Err(KvError::Other("unreachable".into()))
    }

    fn delete(&self, _: &str) -> Result<(), KvError> {
        Err(KvError::Other("unreachable".into()))
    }

    fn list(&self, _: &str, _: Option<&str>, _: u32) -> Result<ListPage, KvError> {
        Err(KvError::Other("unreachable".into()))
    }
}

/// A cache in memory, shared by everything that borrows it (one "POP").
#[derive(Default)]
pub struct MemoryCache {
    entries: RefCell<BTreeMap<String, (Vec<u8>, u64)>>,
    pub clock_ms: Cell<u64>,
    /// Claims fail (a host cache error) while set.
    pub failing: Cell<bool>,
}

impl SharedCache for MemoryCache {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        if self.failing.get() {
            return Err(CacheFailed);
        }
        let now = self.clock_ms.get();
        let mut entries = self.entries.borrow_mut();
        if entries.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        entries.insert(key.to_string(), (Vec::new(), now + ttl_ms));
        Ok(true)
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.clock_ms.get();
        self.entries
            .borrow()
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        let now = self.clock_ms.get();
        self.entries
            .borrow_mut()
            .insert(key.to_string(), (value.to_vec(), now + ttl_ms));
    }

    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if let Some(v) = self.get(key) {
            return Some(v);
        }
        let v = compute()?;
        self.set(key, &v, ttl_ms);
        Some(v)
    }
}

/// A clock tests move by hand; sleeping moves it.
#[derive(Default)]
pub struct ManualClock {
    pub now: Cell<u64>,
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn sleep_until(&self, at_ms: u64) {
        if at_ms > self.now.get() {
            self.now.set(at_ms);
        }
    }
}

/// Ids 1, 2, 3, … as presence ids.
#[derive(Default)]
pub struct CountingIds {
    next: Cell<u64>,
}

impl IdSource for CountingIds {
    fn random_u64s(&self) -> [u64; 2] {
        let n = self.next.get() + 1;
        self.next.set(n);
        [n, n * 7]
    }
}

pub const TEST_GRIP_KEY: &[u8] = b"test-grip-key";

/// Owns a set of fakes and lends them out as [`Services`].
pub struct TestServices {
    pub config: Config,
    pub publisher: RecordingPublisher,
    pub kv: MemoryKv,
    pub cache: MemoryCache,
    pub clock: ManualClock,
    pub ids: CountingIds,
    pub grip: GripVerifier,
    pub secrets: HashMap<String, Vec<u8>>,
    pub settings: HashMap<String, String>,
    pub log: RecordingLog,
    /// What answers the service's calls to itself (`None`: they fail, as with no peers).
    pub peer_handler: Cell<Option<PeerHandler>>,
    /// What webhook receivers were sent, and how they answer.
    pub outbound: RecordingOutbound,
}

/// Answers one call to the service itself, with the services of the answering execution.
pub type PeerHandler = fn(&Services, &http::Request<Vec<u8>>) -> http::Response<Vec<u8>>;

/// Calls to the service itself, answered in turn by `peer_handler` with this bundle's fakes
/// (each call a fresh request on the same store, clock and cache).
impl Peers for TestServices {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        let services = self.services();
        requests
            .iter()
            .map(|req| match self.peer_handler.get() {
                Some(handler) => Ok(handler(&services, req)),
                None => Err(PeerError("no peer handler in this test".into())),
            })
            .collect()
    }
}

impl TestServices {
    pub fn new() -> Self {
        TestServices {
            // As locally: any site id is served (tests of the registry refuse them).
            config: Config {
                unregistered_sites: crate::platform::config::UnregisteredSites::Serve,
                ..Config::default()
            },
            publisher: RecordingPublisher::default(),
            kv: MemoryKv::default(),
            cache: MemoryCache::default(),
            clock: ManualClock::default(),
            ids: CountingIds::default(),
            grip: GripVerifier::hs256(TEST_GRIP_KEY, "pushpin"),
            // The local Grip key: SSE sessions are signed with a key derived from it.
            secrets: HashMap::from([(
                crate::platform::fastly_toml::GRIP_KEY_SECRET.to_string(),
                TEST_GRIP_KEY.to_vec(),
            )]),
            settings: HashMap::new(),
            log: RecordingLog::default(),
            peer_handler: Cell::new(None),
            outbound: RecordingOutbound::default(),
        }
    }

    /// Configures the admin token.
    pub fn set_admin_token(&mut self, token: &[u8]) {
        self.secrets.insert(
            crate::platform::fastly_toml::ADMIN_TOKEN_SECRET.to_string(),
            token.to_vec(),
        );
    }

    /// Moves both the clock and the cache's notion of time.
    pub fn set_time(&self, ms: u64) {
        self.clock.now.set(ms);
        self.cache.clock_ms.set(ms);
    }

    pub fn services(&self) -> Services<'_> {
        self.services_with_cache(&self.cache)
    }

    /// The services of another POP: its own cache, the same KV store.
    pub fn services_with_cache<'a>(&'a self, cache: &'a MemoryCache) -> Services<'a> {
        Services {
            config: &self.config,
            publisher: &self.publisher,
            kv: &self.kv,
            cache,
            clock: &self.clock,
            ids: &self.ids,
            grip: &self.grip,
            secrets: &self.secrets,
            settings: &self.settings,
            log: &self.log,
            peers: self,
            outbound: &self.outbound,
        }
    }
}

/// A store that is down (for the tests that run natively).
#[cfg(not(target_arch = "wasm32"))]
pub struct Down;

#[cfg(not(target_arch = "wasm32"))]
impl crate::platform::kv::KvStore for Down {
    fn lookup(
        &self,
        _: &str,
    ) -> Result<Option<crate::platform::kv::Entry>, crate::platform::kv::KvError> {
        Err(crate::platform::kv::KvError::Other(
            "store liveuser: internal error 42".into(),
        ))
    }
    fn insert(
        &self,
        _: &str,
        _: &[u8],
        _: Option<u32>,
        _: crate::platform::kv::WriteMode,
    ) -> Result<(), crate::platform::kv::KvError> {
        Err(crate::platform::kv::KvError::Other(
            "store liveuser: internal error 42".into(),
        ))
    }
    fn delete(&self, _: &str) -> Result<(), crate::platform::kv::KvError> {
        Err(crate::platform::kv::KvError::Other(
            "store liveuser: internal error 42".into(),
        ))
    }
    fn list(
        &self,
        _: &str,
        _: Option<&str>,
        _: u32,
    ) -> Result<crate::platform::kv::ListPage, crate::platform::kv::KvError> {
        Err(crate::platform::kv::KvError::Other(
            "store liveuser: internal error 42".into(),
        ))
    }
}
