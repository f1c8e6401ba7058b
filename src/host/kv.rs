//! The Compute KV store behind [`KvStore`].

use std::time::Duration;

use fastly::kv_store::{InsertMode, KVStoreError};
use fastly::KVStore;

use crate::kv::{Entry, KvError, KvStore, ListPage, WriteMode};

/// The KV store this service keeps presence (and totals) in.
pub struct HostKv {
    store: Option<KVStore>,
    name: String,
}

impl HostKv {
    /// Opens the store; a missing store makes every operation fail with a clear error.
    pub fn open(name: &str) -> HostKv {
        let store = match KVStore::open(name) {
            Ok(store) => store,
            Err(e) => {
                println!("liveuser kv-open-failed store={name} error={e}");
                None
            }
        };
        HostKv {
            store,
            name: name.to_string(),
        }
    }

    fn store(&self) -> Result<&KVStore, KvError> {
        self.store.as_ref().ok_or_else(|| {
            KvError::Other(format!(
                "KV store {:?} is not linked to this service",
                self.name
            ))
        })
    }
}

fn map_error(e: KVStoreError) -> KvError {
    match e {
        KVStoreError::ItemPreconditionFailed => KvError::PreconditionFailed,
        KVStoreError::TooManyRequests => KvError::TooManyRequests,
        other => KvError::Other(other.to_string()),
    }
}

impl KvStore for HostKv {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        match self.store()?.lookup(key) {
            Ok(mut found) => Ok(Some(Entry {
                generation: found.current_generation(),
                value: found.take_body_bytes(),
            })),
            Err(KVStoreError::ItemNotFound) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        let mut builder = self.store()?.build_insert();
        if let Some(ttl) = ttl_secs {
            builder = builder.time_to_live(Duration::from_secs(u64::from(ttl)));
        }
        builder = match mode {
            WriteMode::Overwrite => builder,
            WriteMode::AddOnly => builder.mode(InsertMode::Add),
            WriteMode::IfGeneration(generation) => builder.if_generation_match(generation),
        };
        builder.execute(key, value.to_vec()).map_err(map_error)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        match self.store()?.delete(key) {
            Ok(()) | Err(KVStoreError::ItemNotFound) => Ok(()),
            Err(e) => Err(map_error(e)),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        let store = match self.store() {
            Ok(store) => store,
            Err(e) => return keys.iter().map(|k| (k.clone(), e.clone())).collect(),
        };
        let mut failed = Vec::new();
        // Deletes go out together, a batch at a time, and are then waited for: a sweep of
        // hundreds of keys takes a few round trips, not hundreds.
        for batch in keys.chunks(crate::kv::DELETE_BATCH) {
            let pending: Vec<_> = batch
                .iter()
                .map(|k| (k, store.build_delete().execute_async(k)))
                .collect();
            for (key, handle) in pending {
                let result = handle.and_then(|h| store.pending_delete_wait(h));
                match result {
                    Ok(()) | Err(KVStoreError::ItemNotFound) => {}
                    Err(e) => failed.push((key.clone(), map_error(e))),
                }
            }
        }
        failed
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        let mut builder = self.store()?.build_list().prefix(prefix).limit(limit);
        if let Some(cursor) = cursor {
            builder = builder.cursor(cursor);
        }
        let page = builder.execute().map_err(map_error)?;
        let next_cursor = page.next_cursor();
        Ok(ListPage {
            keys: page.into_keys(),
            next_cursor,
        })
    }
}
