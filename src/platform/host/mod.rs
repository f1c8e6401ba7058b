//! The real, host-backed services: the Compute API behind the library's traits, and
//! [`HostServices`], which builds them for one request. Compiled for wasm32 only; exercised by
//! the end-to-end tests under Viceroy, and by unit tests run inside Viceroy.

pub mod cache;
pub mod config_store;
pub mod kv;
pub mod log;
pub mod outbound;
pub mod peers;
pub mod publisher;

use fastly::{Request, Response, SecretStore};

use crate::platform::clock::SystemClock;
use crate::platform::config::{self, Config};
use crate::platform::fastly_toml;
use crate::platform::ids::OsRandom;
use crate::platform::log::{Line, Log};
use crate::platform::secrets::Secrets;
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::grip_sig::GripVerifier;
use crate::wire::request::ClientAddress;

use cache::HostCache;
use config_store::HostConfig;
use kv::HostKv;
use log::HostLog;
use outbound::DynamicBackends;
use peers::BackendPeers;
use publisher::BackendPublisher;

/// The Compute secret store behind [`Secrets`].
pub struct HostSecrets;

impl Secrets for HostSecrets {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        let store = SecretStore::open(fastly_toml::SECRET_STORE).ok()?;
        let secret = store.try_get(name).ok()??;
        Some(secret.plaintext().to_vec())
    }
}

/// The host services of one request, owned here and lent out as [`Services`].
pub struct HostServices<'a> {
    config: Config,
    settings: HostConfig,
    kv: HostKv,
    cache: HostCache<'a>,
    publisher: BackendPublisher,
    grip: GripVerifier,
    log: &'a HostLog,
}

impl<'a> HostServices<'a> {
    /// Opens the stores and reads the settings (a setting that does not parse is logged and
    /// defaulted), the publish token and the Grip-Sig key; points `log` at the log endpoint
    /// unless the settings say not to.
    pub fn open(log: &'a HostLog) -> HostServices<'a> {
        let settings = HostConfig::open(fastly_toml::CONFIG_STORE);
        let (config, warnings) = Config::load(&settings);
        if config.log_endpoint {
            log.to_endpoint();
        }
        for w in &warnings {
            log.emit(&Line::ConfigWarning(w));
        }
        let service_id = std::env::var("FASTLY_SERVICE_ID").unwrap_or_default();
        let target = crate::platform::publisher::target(config.publish, &service_id);
        let publisher = BackendPublisher {
            backend: target.backend.to_string(),
            url: target.url,
            token: target
                .token_secret
                .and_then(|name| HostSecrets.get(name))
                .map(|t| String::from_utf8_lossy(&t).into_owned()),
        };
        let grip = config::grip_verifier(&config, &service_id, &HostSecrets);
        HostServices {
            kv: HostKv::open(fastly_toml::KV_STORE, log),
            cache: HostCache { log },
            config,
            settings,
            publisher,
            grip,
            log,
        }
    }

    /// The config store, for per-site settings.
    pub fn settings(&self) -> &dyn crate::platform::config::ConfigSource {
        &self.settings
    }

    pub fn services(&self) -> Services<'_> {
        Services {
            config: &self.config,
            publisher: &self.publisher,
            kv: &self.kv,
            cache: &self.cache,
            clock: &SystemClock,
            ids: &OsRandom,
            grip: &self.grip,
            secrets: &HostSecrets,
            settings: &self.settings,
            log: self.log,
            peers: &BackendPeers,
            outbound: &DynamicBackends,
        }
    }
}

/// Hands the browser's WebSocket to Fanout, which calls this service back with its events
/// (through the `self` backend); a failed handoff is logged and answered 500 (`false`: no
/// connection will follow).
pub fn handoff(req: Request, log: &dyn Log, path: &str) -> bool {
    match req.handoff_fanout(fastly_toml::FANOUT_BACKEND) {
        Ok(()) => {
            log.emit(&Line::Handoff { path });
            true
        }
        Err(e) => {
            log.emit(&Line::HandoffFailed {
                path,
                error: &e.root_cause().to_string(),
            });
            let err = HttpError::Internal("WebSocket handoff to Fanout failed".into());
            send(crate::wire::response::error(&err));
            false
        }
    }
}

/// Removes every header whose (lowercase) name `unwanted` picks.
pub fn remove_headers(req: &mut Request, unwanted: impl Fn(&str) -> bool) {
    let names: Vec<String> = req
        .get_header_names()
        .map(|n| n.as_str().to_string())
        .filter(|n| unwanted(n))
        .collect();
    for name in names {
        req.remove_header(&name);
    }
}

/// Converts the client request into the library's request type. At most `limit + 1` bytes of
/// body are read, chunked or not: a body cut there is over the limit, and the handlers answer
/// it as such (the WebSocket endpoint closes the connection with 1009, the API says 413).
pub fn into_http_request(req: Request, limit: usize) -> http::Request<Vec<u8>> {
    use std::io::Read;
    let address = req
        .get_client_ip_addr()
        .map(|ip| ClientAddress(ip.to_string()));
    let http_req: http::Request<fastly::Body> = req.into();
    let (parts, body) = http_req.into_parts();
    let mut bytes = Vec::new();
    // A body that cannot be read is treated as what was read of it.
    let _ = body.take(limit as u64 + 1).read_to_end(&mut bytes);
    let mut request = http::Request::from_parts(parts, bytes);
    if let Some(address) = address {
        request.extensions_mut().insert(address);
    }
    request
}

/// Sends the library's response to the client.
pub fn send(resp: http::Response<Vec<u8>>) {
    let (parts, body) = resp.into_parts();
    let resp: Response = http::Response::from_parts(parts, fastly::Body::from(body)).into();
    resp.send_to_client();
}
