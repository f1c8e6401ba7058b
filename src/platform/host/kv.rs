//! The Compute KV store behind [`KvStore`].

use std::time::Duration;

use fastly::kv_store::{InsertMode, KVStoreError};
use fastly::KVStore;

use crate::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use crate::platform::log::{Line, Log};

/// The KV store this service keeps presence (and totals) in.
pub struct HostKv {
    store: Option<KVStore>,
    name: String,
}

impl HostKv {
    /// Opens the store; a missing store makes every operation fail with a clear error.
    pub fn open(name: &str, log: &dyn Log) -> HostKv {
        let store = match KVStore::open(name) {
            Ok(store) => store,
            Err(e) => {
                log.emit(&Line::KvOpenFailed {
                    store: name,
                    error: &e.to_string(),
                });
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
        for batch in keys.chunks(crate::platform::kv::DELETE_BATCH) {
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

/// These run inside Viceroy (`cargo test --target wasm32-wasip1 --lib host::`), against the
/// KV store fastly.toml declares. Each test uses keys of its own: they share one store.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fastly_toml::KV_STORE;
    use crate::platform::kv::LIST_PAGE;

    fn store() -> HostKv {
        HostKv::open(KV_STORE, &crate::platform::log::Stdout)
    }

    #[test]
    fn insert_only_writes_refuse_an_existing_key() {
        let kv = store();
        kv.insert("host-test/add/a", b"1", None, WriteMode::AddOnly)
            .expect("first add");
        assert_eq!(
            kv.insert("host-test/add/a", b"2", None, WriteMode::AddOnly),
            Err(KvError::PreconditionFailed)
        );
        assert_eq!(
            kv.lookup("host-test/add/a")
                .expect("lookup")
                .map(|e| e.value),
            Some(b"1".to_vec())
        );
    }

    #[test]
    fn generation_matched_writes_refuse_a_stale_generation() {
        let kv = store();
        kv.insert("host-test/gen/a", b"1", None, WriteMode::Overwrite)
            .expect("insert");
        let first = kv
            .lookup("host-test/gen/a")
            .expect("lookup")
            .expect("entry");
        kv.insert(
            "host-test/gen/a",
            b"2",
            None,
            WriteMode::IfGeneration(first.generation),
        )
        .expect("the generation read");
        let second = kv
            .lookup("host-test/gen/a")
            .expect("lookup")
            .expect("entry");
        assert_ne!(second.generation, first.generation);
        assert_eq!(
            kv.insert(
                "host-test/gen/a",
                b"3",
                None,
                WriteMode::IfGeneration(first.generation)
            ),
            Err(KvError::PreconditionFailed),
            "a generation that changed since it was read"
        );
        assert_eq!(second.value, b"2".to_vec());
    }

    #[test]
    fn lists_follow_the_cursor_in_pages_of_the_limit_asked() {
        let kv = store();
        for i in 0..25 {
            kv.insert(
                &format!("host-test/list/{i:02}"),
                b"",
                Some(60),
                WriteMode::Overwrite,
            )
            .expect("insert");
        }
        let first = kv.list("host-test/list/", None, 10).expect("first page");
        assert_eq!(first.keys.len(), 10);
        let cursor = first.next_cursor.expect("more pages");
        let second = kv
            .list("host-test/list/", Some(&cursor), 10)
            .expect("second page");
        assert_eq!(second.keys.len(), 10);
        assert!(
            second.keys[0] > first.keys[9],
            "pages continue where the last ended"
        );
        let all = crate::platform::kv::list_all(&kv, "host-test/list/").expect("all pages");
        assert_eq!(all.len(), 25);
        // The service's own page size is honoured too.
        let full = kv
            .list("host-test/list/", None, LIST_PAGE)
            .expect("a full page");
        assert_eq!((full.keys.len(), full.next_cursor), (25, None));
    }

    #[test]
    fn deletes_in_batches_and_a_missing_key_is_no_error() {
        let kv = store();
        let keys: Vec<String> = (0..40).map(|i| format!("host-test/del/{i:02}")).collect();
        for k in &keys {
            kv.insert(k, b"", None, WriteMode::Overwrite)
                .expect("insert");
        }
        let mut doomed = keys.clone();
        doomed.push("host-test/del/never-written".into());
        assert!(kv.delete_many(&doomed).is_empty(), "every delete succeeded");
        assert!(crate::platform::kv::list_all(&kv, "host-test/del/")
            .expect("list")
            .is_empty());
        assert_eq!(kv.lookup("host-test/del/00"), Ok(None));
    }

    #[test]
    fn a_store_that_is_not_linked_fails_every_operation_clearly() {
        let kv = HostKv::open("no-such-store", &crate::platform::log::Stdout);
        assert!(matches!(kv.lookup("a"), Err(KvError::Other(e)) if e.contains("not linked")));
    }
}
