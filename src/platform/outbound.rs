//! Requests to URLs nobody declared in advance (a site owner's webhook receiver), behind a
//! trait. On Compute each goes through a *dynamic backend* made for its scheme, host and port
//! (`host::outbound`): the service must have dynamic backends enabled, and may hold at most
//! 200 of them. Each request is a backend request of its execution (at most 32 an execution).

/// How long a request may take to connect, to its first byte and between bytes: short, since
/// a receiver that is slow to answer is retried later rather than waited for.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const FIRST_BYTE_TIMEOUT_MS: u64 = 5_000;
pub const BETWEEN_BYTES_TIMEOUT_MS: u64 = 5_000;

/// Why a request got no answer (no status: it may not have arrived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundError(pub String);

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub trait Outbound {
    /// Sends every request (each to its absolute URL) at once and waits for all of them: the
    /// statuses answered, in the requests' order.
    fn send_all(&self, requests: Vec<http::Request<Vec<u8>>>) -> Vec<Result<u16, OutboundError>>;
}

/// Nowhere to send (tools that run the service's code outside Compute): every request fails.
pub struct NoOutbound;

impl Outbound for NoOutbound {
    fn send_all(&self, requests: Vec<http::Request<Vec<u8>>>) -> Vec<Result<u16, OutboundError>> {
        requests
            .iter()
            .map(|_| Err(OutboundError("no outbound requests here".into())))
            .collect()
    }
}
