//! Publishing messages to a site's channel through Fanout's publish API.
//!
//! The body is GRIP's publish format (see `wire::publish`).
//! Locally it is POSTed to Pushpin's publish port; on Fastly to the service's publish endpoint.
//! The [`Publisher`] trait is the seam: the host implementation sends HTTP, tests count calls.

use std::fmt;

use crate::platform::fastly_toml;
pub use crate::wire::publish::PublishItem;

/// Why a publish failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The request could not be sent (backend down, timeout).
    Unreachable(String),
    /// The publish endpoint answered with an error status.
    Rejected { status: u16, body: String },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Unreachable(e) => write!(f, "publish endpoint unreachable: {e}"),
            PublishError::Rejected { status, body } => {
                write!(f, "publish rejected with {status}: {body}")
            }
        }
    }
}

impl std::error::Error for PublishError {}

/// Where publish requests go: a backend, a URL, and the secret holding the token (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    pub backend: &'static str,
    pub url: String,
    pub token_secret: Option<&'static str>,
}

/// The publish target for a mode: one code path, only the target differs.
pub fn target(mode: crate::platform::config::PublishMode, service_id: &str) -> PublishTarget {
    match mode {
        crate::platform::config::PublishMode::Fastly => PublishTarget {
            backend: fastly_toml::FASTLY_API_BACKEND,
            // The trailing slash is required.
            url: format!("https://api.fastly.com/service/{service_id}/publish/"),
            token_secret: Some(fastly_toml::PUBLISH_TOKEN_SECRET),
        },
        crate::platform::config::PublishMode::Local => PublishTarget {
            backend: fastly_toml::LOCAL_PUBLISH_BACKEND,
            url: fastly_toml::LOCAL_PUBLISH_URL.to_string(),
            token_secret: None,
        },
    }
}

/// Something that can deliver messages to channels.
pub trait Publisher {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError>;
}

/// Wraps a publisher and counts publish requests (failed ones too), for the request log.
pub struct CountingPublisher<'a> {
    inner: &'a dyn Publisher,
    count: std::cell::Cell<u32>,
}

impl<'a> CountingPublisher<'a> {
    pub fn new(inner: &'a dyn Publisher) -> Self {
        CountingPublisher {
            inner,
            count: std::cell::Cell::new(0),
        }
    }

    pub fn count(&self) -> u32 {
        self.count.get()
    }
}

impl Publisher for CountingPublisher<'_> {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        self.count.set(self.count.get() + 1);
        self.inner.publish(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_differ_only_in_where_and_how() {
        use crate::platform::config::PublishMode;
        let fastly = target(PublishMode::Fastly, "SVC123");
        assert_eq!(fastly.url, "https://api.fastly.com/service/SVC123/publish/");
        assert_eq!(fastly.backend, "fastly_api");
        assert_eq!(fastly.token_secret, Some("fanout_publish_token"));
        let local = target(PublishMode::Local, "ignored");
        assert_eq!(local.url, "http://127.0.0.1:5561/publish/");
        assert_eq!(local.token_secret, None);
    }
}
