//! Access to the public reads (the API, the badge, SSE leaves): CORS, so any page can read
//! them, and each client's budget of reads a minute (see `count::limits`). A read is charged
//! only when it costs the service a store operation ([`charged`]): answers from the POP's
//! cache are free, so a popular badge or many readers behind one address are not refused.

use std::cell::Cell;

use http::{header, Request, Response};

use crate::count::limits::{self, ClientKey, Verdict};
use crate::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::request::ClientAddress;

/// Adds CORS headers to an API error, so pages can read why their GET failed.
pub fn with_cors(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    resp
}

/// The key of the request's client (its address), when it came with one (tests send none).
pub fn client_of(req: &Request<Vec<u8>>, services: &Services) -> Option<ClientKey> {
    let ClientAddress(address) = req.extensions().get::<ClientAddress>()?;
    let now_ms = services.clock.now_ms();
    Some(limits::client_key(
        services.secrets,
        services.cache,
        services.ids,
        now_ms,
        address,
    ))
}

/// Whether `client` may make one more API request (to `path`) this minute, and counts it; a
/// client refused is logged. Requests without a client are not limited.
pub fn may_read(services: &Services, path: &str, client: Option<&ClientKey>) -> bool {
    let Some(client) = client else {
        return true;
    };
    let now_ms = services.clock.now_ms();
    match limits::take_api_read(services.cache, &services.config.limits, client, now_ms) {
        Verdict::Within => true,
        Verdict::Unchecked => {
            services
                .log
                .emit(&Line::LimitUnchecked { limit: "api-reads" });
            true
        }
        Verdict::Over => {
            services.log.emit(&Line::ApiLimited { path });
            false
        }
    }
}

/// Runs `read` (a public read of `req`) so that its client is charged one API request at its
/// first store operation, and none if the POP's cache answers it all. A client whose share is
/// spent is not let through to the store: it gets 429, unless the read could answer without
/// the store after all (from what the POP last saw).
pub fn charged<T>(
    req: &Request<Vec<u8>>,
    services: &Services,
    read: impl FnOnce(&Services) -> Result<T, HttpError>,
) -> Result<T, HttpError> {
    let kv = ChargedKv {
        inner: services.kv,
        services,
        req,
        admitted: Cell::new(None),
    };
    let result = read(&Services {
        kv: &kv,
        ..*services
    });
    if kv.admitted.get() == Some(false) && result.is_err() {
        return Err(HttpError::TooMany {
            what: "API reads",
            retry_after_secs: limits::api_retry_after_secs(services.clock.now_ms()),
        });
    }
    result
}

/// The store as one charged read sees it: the first operation charges the client (its key is
/// worked out then, not for answers the cache gives), and every operation after a refusal fails.
struct ChargedKv<'a> {
    inner: &'a dyn KvStore,
    services: &'a Services<'a>,
    req: &'a Request<Vec<u8>>,
    /// Whether the client was charged within its share (`None`: not charged yet).
    admitted: Cell<Option<bool>>,
}

impl ChargedKv<'_> {
    fn admit(&self) -> Result<(), KvError> {
        let admitted = self.admitted.get().unwrap_or_else(|| {
            let client = client_of(self.req, self.services);
            let within = may_read(self.services, self.req.uri().path(), client.as_ref());
            self.admitted.set(Some(within));
            within
        });
        if admitted {
            Ok(())
        } else {
            // Not the store's 429: what the read's failure line should say.
            Err(KvError::Other(
                "not asked: the client's API reads this minute are spent".into(),
            ))
        }
    }
}

impl KvStore for ChargedKv<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.admit()?;
        self.inner.lookup(key)
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        self.admit()?;
        self.inner.insert(key, value, ttl_secs, mode)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.admit()?;
        self.inner.delete(key)
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        match self.admit() {
            Ok(()) => self.inner.delete_many(keys),
            Err(e) => keys.iter().map(|k| (k.clone(), e.clone())).collect(),
        }
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.admit()?;
        self.inner.list(prefix, cursor, limit)
    }
}
