//! What the recorder and the replay share: the answers a step got, in order, and the
//! fingerprint of the call each answered.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};

use liveuser_edge::platform::cache::CacheFailed;
use liveuser_edge::platform::cache::SharedCache;
use liveuser_edge::platform::kv::{Entry, KvError, ListPage};
use liveuser_edge::platform::log::{Line, Log};
use liveuser_edge::platform::peers::PeerError;
use liveuser_edge::platform::publisher::{PublishError, PublishItem};

/// One answer the host gave.
#[derive(Debug, Clone)]
pub enum Answer {
    Lookup(Result<Option<Entry>, KvError>),
    Write(Result<(), KvError>),
    DeleteMany(Vec<(String, KvError)>),
    List(Result<PackedPage, KvError>),
    Claim(Result<bool, CacheFailed>),
    CacheGet(Option<Vec<u8>>),
    CacheSet,
    Publish(Result<(), PublishError>),
    Now(u64),
    Slept,
    Ids([u64; 2]),
    Peers(Vec<Result<(u16, Vec<u8>), PeerError>>),
}

/// A list page kept in two allocations rather than one a key: pages are most of what a
/// count is answered, and recording them must not slow the run much.
#[derive(Debug, Clone)]
pub struct PackedPage {
    keys: String,
    ends: Vec<u32>,
    next_cursor: Option<String>,
}

impl PackedPage {
    pub(crate) fn pack(page: &ListPage) -> PackedPage {
        let mut keys = String::with_capacity(page.keys.iter().map(String::len).sum());
        let ends = page
            .keys
            .iter()
            .map(|k| {
                keys.push_str(k);
                keys.len() as u32
            })
            .collect();
        PackedPage {
            keys,
            ends,
            next_cursor: page.next_cursor.clone(),
        }
    }

    pub(crate) fn unpack(&self) -> ListPage {
        let mut from = 0;
        ListPage {
            keys: self
                .ends
                .iter()
                .map(|&end| {
                    let key = self.keys[from..end as usize].to_string();
                    from = end as usize;
                    key
                })
                .collect(),
            next_cursor: self.next_cursor.clone(),
        }
    }
}

/// The answers one step got, in order, each with the fingerprint of the call it answered.
#[derive(Debug, Default)]
pub struct Tape {
    pub(crate) answers: RefCell<Vec<(u64, Answer)>>,
}

impl Tape {
    /// A tape with room for a step's usual answers (made before the step is metered).
    pub fn new() -> Tape {
        Tape {
            answers: RefCell::new(Vec::with_capacity(64)),
        }
    }

    pub(crate) fn push(&self, call: u64, a: Answer) {
        self.answers.borrow_mut().push((call, a));
    }

    /// How many answers the step has had so far.
    pub fn len(&self) -> usize {
        self.answers.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A call's fingerprint: what it is and its arguments, so that a replay that asks anything
/// else than the first run asked at that point is caught.
pub(crate) fn call(kind: &str, args: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    args.hash(&mut h);
    h.finish()
}

pub(crate) fn items_fingerprint(items: &[PublishItem]) -> Vec<(&str, &str, Option<&str>)> {
    items
        .iter()
        .map(|i| (i.channel.as_str(), i.content.as_str(), i.id.as_deref()))
        .collect()
}

pub(crate) fn requests_fingerprint(requests: &[http::Request<Vec<u8>>]) -> Vec<String> {
    requests.iter().map(|r| r.uri().to_string()).collect()
}

/// What the simulated cache does on `get_or_compute`: a miss computes here, then stores.
pub(crate) fn get_or_compute(
    cache: &dyn SharedCache,
    key: &str,
    ttl_ms: u64,
    compute: &mut dyn FnMut() -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    if let Some(v) = cache.get(key) {
        return Some(v);
    }
    let v = compute()?;
    cache.set(key, &v, ttl_ms);
    Some(v)
}

/// A replay's log lines go nowhere: the first run's were counted.
pub struct NoLog;

impl Log for NoLog {
    fn emit(&self, _line: &Line) {}
}
