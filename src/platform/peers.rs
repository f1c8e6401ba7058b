//! Calls to this service itself, behind a trait: a count too large for one execution is split
//! into requests to the service's own domain (through the `self` backend), sent together and
//! answered by other executions, each under Compute's limits of its own.

/// Why a call to the service itself got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError(pub String);

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call to the service itself failed: {}", self.0)
    }
}

pub trait Peers {
    /// Sends every request at once and waits for all of them: the answers in the requests'
    /// order. Each request is a backend request of this execution.
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>>;
}

/// No peers to call (tools that run the service's code outside Compute and never split a
/// count): every call fails.
pub struct NoPeers;

impl Peers for NoPeers {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        requests
            .iter()
            .map(|_| Err(PeerError("no peers here".into())))
            .collect()
    }
}
