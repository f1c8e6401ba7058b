//! The body of a publish request: GRIP's format,
//! `{"items":[{"channel":…,"id":…,"formats":{"ws-message":{"content":…},
//! "http-stream":{"content":"data: …\n\n"}}}]}`. Each item reaches WebSocket readers as a text
//! message and SSE readers as a server-sent event, whichever a channel holds; or, for an item
//! that closes streams, `{"http-stream":{"action":"close"}}`: Fanout ends every stream it holds
//! on the channel.

use serde::Serialize;

use crate::wire::event_stream;

/// One message for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishItem {
    pub channel: String,
    /// Optional item id; Fanout drops a repeat of an id it has just seen.
    pub id: Option<String>,
    /// The WebSocket text message delivered to every subscriber.
    pub content: String,
    /// Instead of a message: end every HTTP stream held on the channel.
    pub close_streams: bool,
}

impl PublishItem {
    /// An item that ends every stream Fanout holds on `channel`.
    pub fn close_streams(channel: String) -> PublishItem {
        PublishItem {
            channel,
            id: None,
            content: String::new(),
            close_streams: true,
        }
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
#[serde(untagged)]
enum Formats<'a> {
    Message {
        #[serde(rename = "ws-message")]
        ws_message: Content<'a>,
        #[serde(rename = "http-stream")]
        http_stream: Content<'a>,
    },
    CloseStreams {
        #[serde(rename = "http-stream")]
        http_stream: Action,
    },
}

#[derive(Serialize)]
struct Content<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct Action {
    action: &'static str,
}

/// The JSON body of a publish request for `items`.
pub fn request_body(items: &[PublishItem]) -> String {
    let events: Vec<String> = items
        .iter()
        .map(|item| event_stream::event(None, &item.content))
        .collect();
    let body = Body {
        items: items
            .iter()
            .zip(&events)
            .map(|(item, event)| WireItem {
                channel: &item.channel,
                id: item.id.as_deref(),
                formats: if item.close_streams {
                    Formats::CloseStreams {
                        http_stream: Action { action: "close" },
                    }
                } else {
                    Formats::Message {
                        ws_message: Content {
                            content: &item.content,
                        },
                        http_stream: Content { content: event },
                    }
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
    fn body_matches_the_grip_publish_format() {
        let body = request_body(&[
            PublishItem {
                channel: "site.a".into(),
                id: Some("1".into()),
                content: "{\"type\":\"update\",\"count\":3}".into(),
                close_streams: false,
            },
            PublishItem {
                channel: "site.b".into(),
                id: None,
                content: "x".into(),
                close_streams: false,
            },
            PublishItem::close_streams("stream:a:1".into()),
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
                    "http-stream": {"content": "data: x\n\n"}}},
                {"channel": "stream:a:1", "formats": {"http-stream": {"action": "close"}}}
            ]})
        );
    }
}
