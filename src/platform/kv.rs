//! The KV store seam: the operations presence and counters need, and a wrapper that counts
//! them for the per-request log line.

use std::cell::Cell;
use std::fmt;

/// Why a KV operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// A conditional write lost: the key exists (add mode) or changed (generation match).
    PreconditionFailed,
    /// The store is rate limiting this key or service.
    TooManyRequests,
    /// Anything else (store missing, invalid key, host failure).
    Other(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::PreconditionFailed => write!(f, "KV precondition failed"),
            KvError::TooManyRequests => write!(f, "KV rate limited"),
            KvError::Other(e) => write!(f, "KV error: {e}"),
        }
    }
}

impl std::error::Error for KvError {}

/// How an insert treats an existing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Replace whatever is there.
    Overwrite,
    /// Only write if the key does not exist.
    AddOnly,
    /// Only write if the key's generation is still this one.
    IfGeneration(u64),
}

/// A stored value and the generation it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub generation: u64,
}

/// One page of a key listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub next_cursor: Option<String>,
}

/// The most keys one list page may hold (Fastly's limit); listings ask for full pages, so a
/// count of N keys costs ⌈N / 1000⌉ pages rather than the default page's ⌈N / 100⌉.
pub const LIST_PAGE: u32 = 1000;

/// A key takes about one write a second (a delete is a write): faster writes to one key are
/// refused with 429 ([`KvError::TooManyRequests`]).
pub const KEY_WRITE_INTERVAL_MS: u64 = 1000;

/// How many deletes [`KvStore::delete_many`] keeps in flight at once.
pub const DELETE_BATCH: usize = 32;

/// The operations this service uses. Production semantics to keep in mind: reads may be stale
/// for ~300 ms, expired keys may be listed for hours, there is no atomic increment.
pub trait KvStore {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError>;
    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError>;
    /// Deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Deletes several keys, up to [`DELETE_BATCH`] at a time in flight where the store allows
    /// it; returns the keys that could not be deleted.
    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        keys.iter()
            .filter_map(|k| self.delete(k).err().map(|e| (k.clone(), e)))
            .collect()
    }
    /// One page of at most `limit` keys under `prefix`, after `cursor`.
    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError>;
}

/// How many operations of each kind one request made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvCounts {
    pub lookup: u32,
    pub insert: u32,
    pub delete: u32,
    pub list: u32,
}

impl fmt::Display for KvCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kv_lookup={} kv_insert={} kv_delete={} kv_list={}",
            self.lookup, self.insert, self.delete, self.list
        )
    }
}

/// Wraps a store and counts every call made through it (failed calls count too: they cost).
pub struct CountingKv<'a> {
    inner: &'a dyn KvStore,
    counts: Cell<KvCounts>,
}

impl<'a> CountingKv<'a> {
    pub fn new(inner: &'a dyn KvStore) -> Self {
        CountingKv {
            inner,
            counts: Cell::new(KvCounts::default()),
        }
    }

    pub fn counts(&self) -> KvCounts {
        self.counts.get()
    }

    fn bump(&self, f: impl FnOnce(&mut KvCounts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }
}

impl KvStore for CountingKv<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.bump(|c| c.lookup += 1);
        self.inner.lookup(key)
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        self.bump(|c| c.insert += 1);
        self.inner.insert(key, value, ttl_secs, mode)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.bump(|c| c.delete += 1);
        self.inner.delete(key)
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        self.bump(|c| c.delete += keys.len() as u32);
        self.inner.delete_many(keys)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.bump(|c| c.list += 1);
        self.inner.list(prefix, cursor, limit)
    }
}

/// Every key under `prefix`, in full pages, following the listing's cursor.
pub fn list_all(kv: &dyn KvStore, prefix: &str) -> Result<Vec<String>, KvError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = kv.list(prefix, cursor.as_deref(), LIST_PAGE)?;
        keys.extend(page.keys);
        match page.next_cursor {
            Some(next) if !next.is_empty() => cursor = Some(next),
            _ => return Ok(keys),
        }
    }
}
