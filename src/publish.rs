//! Publishing messages to a site's channel through Fanout's publish API.
//!
//! The body format is GRIP's: `{"items":[{"channel":…,"id":…,"formats":{"ws-message":{"content":…},
//! "http-stream":{"content":"data: …\n\n"}}}]}`: each item reaches WebSocket readers as a text
//! message and SSE readers (see `sse`) as a server-sent event, whichever a channel holds.
//! Locally it is POSTed to Pushpin's publish port; on Fastly to the service's publish endpoint.
//! The [`Publisher`] trait is the seam: the host implementation sends HTTP, tests count calls.

use std::fmt;

use serde::Serialize;

use crate::fastly_toml;

/// One message for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishItem {
    pub channel: String,
    /// Optional item id; Fanout drops a repeat of an id it has just seen.
    pub id: Option<String>,
    /// The WebSocket text message delivered to every subscriber.
    pub content: String,
}

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
pub fn target(mode: crate::config::PublishMode, service_id: &str) -> PublishTarget {
    match mode {
        crate::config::PublishMode::Fastly => PublishTarget {
            backend: fastly_toml::FASTLY_API_BACKEND,
            // The trailing slash is required.
            url: format!("https://api.fastly.com/service/{service_id}/publish/"),
            token_secret: Some(fastly_toml::PUBLISH_TOKEN_SECRET),
        },
        crate::config::PublishMode::Local => PublishTarget {
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

#[derive(Serialize)]
struct Body<'a> {
    items: Vec<WireItem<'a>>,
}

#[derive(Serialize)]
struct WireItem<'a> {
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    formats: Formats<'a>,
}

#[derive(Serialize)]
struct Formats<'a> {
    #[serde(rename = "ws-message")]
    ws_message: Content<'a>,
    #[serde(rename = "http-stream")]
    http_stream: Content<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    content: &'a str,
}

/// The JSON body of a publish request for `items`.
pub fn request_body(items: &[PublishItem]) -> String {
    let events: Vec<String> = items
        .iter()
        .map(|item| crate::sse::event(None, &item.content))
        .collect();
    let body = Body {
        items: items
            .iter()
            .zip(&events)
            .map(|(item, event)| WireItem {
                channel: &item.channel,
                id: item.id.as_deref(),
                formats: Formats {
                    ws_message: Content {
                        content: &item.content,
                    },
                    http_stream: Content { content: event },
                },
            })
            .collect(),
    };
    // A struct of strings always serializes.
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_differ_only_in_where_and_how() {
        use crate::config::PublishMode;
        let fastly = target(PublishMode::Fastly, "SVC123");
        assert_eq!(fastly.url, "https://api.fastly.com/service/SVC123/publish/");
        assert_eq!(fastly.backend, "fastly_api");
        assert_eq!(fastly.token_secret, Some("fanout_publish_token"));
        let local = target(PublishMode::Local, "ignored");
        assert_eq!(local.url, "http://127.0.0.1:5561/publish/");
        assert_eq!(local.token_secret, None);
    }

    #[test]
    fn body_matches_the_grip_publish_format() {
        let body = request_body(&[
            PublishItem {
                channel: "site.a".into(),
                id: Some("1".into()),
                content: "{\"type\":\"update\",\"count\":3}".into(),
            },
            PublishItem {
                channel: "site.b".into(),
                id: None,
                content: "x".into(),
            },
        ]);
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"items": [
                {"channel": "site.a", "id": "1", "formats": {
                    "ws-message": {"content": "{\"type\":\"update\",\"count\":3}"},
                    "http-stream": {"content": "data: {\"type\":\"update\",\"count\":3}\n\n"}}},
                {"channel": "site.b", "formats": {
                    "ws-message": {"content": "x"},
                    "http-stream": {"content": "data: x\n\n"}}}
            ]})
        );
    }
}
