//! Calls to this service itself through the `self` backend, all in flight at once.

use fastly::Request;

use crate::platform::fastly_toml;
use crate::platform::peers::{PeerError, Peers};

/// Sends through the `self` backend (the service's own domain in production, Viceroy's own
/// address locally).
pub struct BackendPeers;

impl Peers for BackendPeers {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        let pending: Vec<_> = requests
            .into_iter()
            .map(|req| {
                let (parts, body) = req.into_parts();
                let req: Request =
                    http::Request::from_parts(parts, fastly::Body::from(body)).into();
                req.send_async(fastly_toml::FANOUT_BACKEND)
                    .map_err(|e| PeerError(e.root_cause().to_string()))
            })
            .collect();
        pending
            .into_iter()
            .map(|p| {
                let resp = p?
                    .wait()
                    .map_err(|e| PeerError(e.root_cause().to_string()))?;
                let resp: http::Response<fastly::Body> = resp.into();
                let (parts, body) = resp.into_parts();
                Ok(http::Response::from_parts(parts, body.into_bytes()))
            })
            .collect()
    }
}
