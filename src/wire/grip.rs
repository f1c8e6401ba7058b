//! GRIP over WebSocket-over-HTTP: the control messages and reply headers that tell Fanout
//! what to do with a held connection (subscribe it to a channel, remember facts about it).
//!
//! Control messages travel as TEXT events whose content is `c:` followed by JSON. They are
//! only honoured when the reply to OPEN carries [`EXTENSIONS_VALUE`] in
//! `Sec-WebSocket-Extensions`; its empty `message-prefix` means ordinary TEXT events reach the
//! browser as they are (without it, Fanout would drop any TEXT not starting with `m:`).

use serde::Serialize;

use crate::wire::websocket_events::Event;

/// Header that turns on GRIP control messages for a connection.
pub const EXTENSIONS_HEADER: &str = "Sec-WebSocket-Extensions";
/// Its value: GRIP on, and no prefix on ordinary messages.
pub const EXTENSIONS_VALUE: &str = "grip; message-prefix=\"\"";
/// Header on every request from Fanout: stable for the life of one WebSocket.
pub const CONNECTION_ID_HEADER: &str = "Connection-Id";
/// Header carrying Fanout's signature of the request (a JWT).
pub const SIGNATURE_HEADER: &str = "Grip-Sig";
/// Prefix of reply headers that set connection meta (`Set-Meta-<Name>: value`).
pub const SET_META_PREFIX: &str = "Set-Meta-";
/// Prefix of request headers that carry connection meta set earlier (`Meta-<Name>`).
pub const META_PREFIX: &str = "Meta-";
/// Reply header asking Fanout to call the origin (with no events) when a connection has been
/// quiet this many seconds (at least 20).
pub const KEEP_ALIVE_HEADER: &str = "Keep-Alive-Interval";
/// Reply header holding a plain HTTP response open as a stream (`stream`): the SSE fallback.
pub const HOLD_HEADER: &str = "Grip-Hold";
/// Reply header naming the channels (comma-separated) a held stream receives.
pub const CHANNEL_HEADER: &str = "Grip-Channel";
/// Reply header: what Fanout writes to an idle held stream, and how often.
pub const KEEP_ALIVE_STREAM_HEADER: &str = "Grip-Keep-Alive";
/// The next link Fanout calls while it holds a stream (`<uri>; rel=next; timeout=N`).
pub const LINK_HEADER: &str = "Grip-Link";

/// A GRIP control message for the connection the reply belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ControlMessage {
    /// Deliver everything published to `channel` to this connection.
    Subscribe { channel: String },
    /// Stop delivering `channel` to this connection.
    Unsubscribe { channel: String },
    /// Let the connection go on without this origin: later events are no longer forwarded.
    Detach,
    /// Have Fanout send `content` to the client when the connection is idle (or on an interval).
    KeepAlive {
        content: String,
        timeout: u32,
        mode: KeepAliveMode,
    },
    /// Set one meta value (as `Set-Meta-*` does), from inside the event stream.
    SetMeta { name: String, value: String },
}

/// When a keep-alive fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepAliveMode {
    Idle,
    Interval,
}

impl ControlMessage {
    /// The control message as a TEXT event (`c:{json}`).
    pub fn to_event(&self) -> Event {
        // Serializing a plain enum of strings and integers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        Event::Text(format!("c:{json}"))
    }
}

/// Convenience: the TEXT event subscribing the connection to `channel`.
pub fn subscribe(channel: &str) -> Event {
    ControlMessage::Subscribe {
        channel: channel.to_string(),
    }
    .to_event()
}

/// Convenience: the TEXT event unsubscribing the connection from `channel`.
pub fn unsubscribe(channel: &str) -> Event {
    ControlMessage::Unsubscribe {
        channel: channel.to_string(),
    }
    .to_event()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(event: Event) -> String {
        match event {
            Event::Text(t) => t,
            other => panic!("expected TEXT, got {other:?}"),
        }
    }

    #[test]
    fn subscribe_is_a_prefixed_json_text() {
        assert_eq!(
            text(subscribe("site-a")),
            r#"c:{"type":"subscribe","channel":"site-a"}"#
        );
        assert_eq!(
            text(unsubscribe("site-a")),
            r#"c:{"type":"unsubscribe","channel":"site-a"}"#
        );
    }

    #[test]
    fn other_control_messages_match_the_grip_spec() {
        assert_eq!(
            text(ControlMessage::Detach.to_event()),
            r#"c:{"type":"detach"}"#
        );
        assert_eq!(
            text(
                ControlMessage::KeepAlive {
                    content: "{}".into(),
                    timeout: 30,
                    mode: KeepAliveMode::Idle
                }
                .to_event()
            ),
            r#"c:{"type":"keep-alive","content":"{}","timeout":30,"mode":"idle"}"#
        );
        assert_eq!(
            text(
                ControlMessage::SetMeta {
                    name: "site".into(),
                    value: "a".into()
                }
                .to_event()
            ),
            r#"c:{"type":"set-meta","name":"site","value":"a"}"#
        );
    }

    #[test]
    fn channel_names_are_json_escaped() {
        assert_eq!(
            text(subscribe("a\"b")),
            r#"c:{"type":"subscribe","channel":"a\"b"}"#
        );
    }
}
