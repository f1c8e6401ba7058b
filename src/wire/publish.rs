//! The body of a publish request: GRIP's format,
//! `{"items":[{"channel":…,"id":…,"formats":{"ws-message":{"content":…},
//! "http-stream":{"content":"data: …\n\n"}}}]}`. Each item reaches WebSocket readers as a text
//! message and SSE readers as a server-sent event, whichever a channel holds.

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
        .map(|item| event_stream::event(None, &item.content))
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
