//! The wire messages between the browser client and this service, compatible with the
//! original LiveUser client.
//!
//! client → server: `{"type":"join","siteId","clientId"}` once after open,
//!                  `{"type":"heartbeat","siteId","clientId","timestamp"}` every interval,
//!                  `{"type":"visit"}` for another tab's page view (see `handover`),
//!                  `{"type":"page","page":…}` when a single-page app moves to another page.
//! server → client: `{"type":"update","count":N[,"totalCount":M]}` when the count changes,
//!                  `{"type":"update","count":N,"pageCount":P}` to readers of a page (`page`),
//!                  `"belowMin":true` (and `"pageBelowMin"`) when a count is below the
//!                  site's privacy floor, which it then carries instead (see `floor`),
//!                  `{"type":"heartbeat","timestamp":<unix s>[,"totalCount":M]}` per heartbeat,
//!                  `{"type":"handover","token":…}` in the OPEN reply, when asked for.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A count as it may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// The count, or the floor when the count is below it.
    pub value: u64,
    /// The count is below the floor (`value` is the floor).
    pub below_min: bool,
}

impl Shown {
    /// A count shown as it is.
    pub fn exact(value: u64) -> Shown {
        Shown {
            value,
            below_min: false,
        }
    }
}

/// How the widget shows a count of a thousand or more: "1.2K", "3M", one decimal, as its
/// `formatNumber` does (same doubles, same rounding); `None` below a thousand, which it shows
/// exactly.
pub fn compact(n: u64) -> Option<String> {
    let (scaled, unit) = match n {
        0..=999 => return None,
        1000..=999_949 => (n as f64 / 1000.0, "K"),
        _ => (n as f64 / 1_000_000.0, "M"),
    };
    let tenths = to_fixed_1(scaled);
    Some(match tenths % 10 {
        0 => format!("{}{unit}", tenths / 10),
        d => format!("{}.{d}{unit}", tenths / 10),
    })
}

/// JavaScript's `x.toFixed(1)` of a positive double, in tenths: the nearest tenth to the
/// double's exact value, the larger on a tie (Rust's own formatting breaks ties to even).
fn to_fixed_1(x: f64) -> u64 {
    // x = mantissa × 2^exponent exactly; compare in integers.
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
    if exponent >= 0 {
        return (mantissa << exponent) as u64 * 10;
    }
    let shift = (-exponent) as u32;
    // floor(10x), then whether x is at or past the halfway point above it.
    let floor = (mantissa * 10) >> shift;
    let doubled = mantissa * 20;
    let half_up = ((2 * floor + 1) << shift) <= doubled;
    (floor + u128::from(half_up)) as u64
}

impl Shown {
    /// Whether pages show `self` and `other` alike: both compact ("100K") and the same. Counts
    /// under a thousand are never taken as alike (every change there shows).
    pub fn looks_like(&self, other: &Shown) -> bool {
        !self.below_min
            && !other.below_min
            && compact(self.value).is_some_and(|a| compact(other.value) == Some(a))
    }
}

/// The largest client message accepted; anything larger closes the connection (1009).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A message from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// The page says hello. Its `siteId` is informational only: the site was fixed at OPEN.
    Join { site_id: Option<String> },
    /// The page is still open.
    Heartbeat,
    /// Another tab of this browser opened a page view (the holding tab relays it).
    Visit,
    /// The reader moved to another page (a page name, checked by `page::id`), or off pages
    /// (`null`).
    Page { page: Option<String> },
    /// A message type this service does not know: ignored, for forward compatibility.
    Unknown { kind: String },
}

/// Why a client message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    TooBig {
        len: usize,
    },
    MalformedJson(String),
    NotAnObject,
    /// A field has the wrong type.
    BadField {
        field: &'static str,
        expected: &'static str,
    },
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::TooBig { len } => {
                write!(f, "message of {len} bytes exceeds {MAX_MESSAGE_BYTES}")
            }
            ProtocolError::MalformedJson(e) => write!(f, "malformed JSON: {e}"),
            ProtocolError::NotAnObject => write!(f, "message is not a JSON object"),
            ProtocolError::BadField { field, expected } => {
                write!(f, "{field} must be {expected}")
            }
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<Value>,
    #[serde(rename = "siteId")]
    site_id: Option<Value>,
    page: Option<Value>,
}

/// Parses one text message from the browser.
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooBig { len: text.len() });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::MalformedJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ProtocolError::NotAnObject);
    }
    let envelope: Envelope =
        serde_json::from_value(value).map_err(|e| ProtocolError::MalformedJson(e.to_string()))?;
    let kind = match envelope.kind {
        Some(Value::String(kind)) => kind,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Ok(match kind.as_str() {
        "join" => ClientMessage::Join {
            site_id: envelope
                .site_id
                .and_then(|v| v.as_str().map(str::to_string)),
        },
        "heartbeat" => ClientMessage::Heartbeat,
        "visit" => ClientMessage::Visit,
        "page" => ClientMessage::Page {
            page: match envelope.page {
                None | Some(Value::Null) => None,
                Some(Value::String(page)) => Some(page),
                Some(_) => {
                    return Err(ProtocolError::BadField {
                        field: "page",
                        expected: "a string or null",
                    })
                }
            },
        },
        _ => ClientMessage::Unknown {
            kind: kind.chars().take(32).collect(),
        },
    })
}

/// A server message; fields serialize in this order, `type` first, as the original sends them.
#[derive(Serialize)]
struct ServerMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(rename = "totalCount", skip_serializing_if = "Option::is_none")]
    total_count: Option<u64>,
    /// `None`: not a page's message; `Some(None)`: the page has no count (`null`).
    #[serde(rename = "pageCount", skip_serializing_if = "Option::is_none")]
    page_count: Option<Option<u64>>,
    /// The count is below the site's privacy floor (`count` is the floor); see `floor`.
    #[serde(rename = "belowMin", skip_serializing_if = "is_false")]
    below_min: bool,
    #[serde(rename = "pageBelowMin", skip_serializing_if = "is_false")]
    page_below_min: bool,
    /// The end of the broadcast slot the count was taken for: counts from different POPs can
    /// arrive out of order, and a page keeps the newest it has shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ServerMessage {
    fn to_json(&self) -> String {
        // A struct of integers and a static string always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `{"type":"update","count":N}`, with `totalCount` when given, `"belowMin":true` when the
/// count is below the site's privacy floor, and the `slot` it was counted for (the original
/// client ignores the field).
pub fn update(count: Shown, total: Option<u64>, slot: Option<u64>) -> String {
    ServerMessage {
        kind: "update",
        count: Some(count.value),
        timestamp: None,
        total_count: total,
        page_count: None,
        below_min: count.below_min,
        page_below_min: false,
        slot,
    }
    .to_json()
}

/// `{"type":"update","count":N[,"totalCount":M],"pageCount":P}`: an update for a reader of a
/// page; `pageCount` is null for a page without a count (beyond the site's busiest pages).
pub fn page_update(
    count: Shown,
    total: Option<u64>,
    page_count: Option<Shown>,
    slot: Option<u64>,
) -> String {
    ServerMessage {
        kind: "update",
        count: Some(count.value),
        timestamp: None,
        total_count: total,
        page_count: Some(page_count.map(|p| p.value)),
        below_min: count.below_min,
        page_below_min: page_count.is_some_and(|p| p.below_min),
        slot,
    }
    .to_json()
}

/// `{"type":"heartbeat","timestamp":<unix seconds>}`, with `totalCount` when given.
pub fn heartbeat(timestamp_secs: u64, total: Option<u64>) -> String {
    ServerMessage {
        kind: "heartbeat",
        count: None,
        timestamp: Some(timestamp_secs),
        total_count: total,
        page_count: None,
        below_min: false,
        page_below_min: false,
        slot: None,
    }
    .to_json()
}

/// `{"type":"handover","token":…}`: what a tab that takes this connection over names.
pub fn handover(token: &str) -> String {
    // `type` first, as in every other message (a JSON object would sort its keys).
    let token = serde_json::Value::from(token);
    format!(r#"{{"type":"handover","token":{token}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_original_clients_messages() {
        assert_eq!(
            parse(r#"{"type":"join","siteId":"a","clientId":"c1"}"#),
            Ok(ClientMessage::Join {
                site_id: Some("a".into())
            })
        );
        assert_eq!(
            parse(r#"{"type":"heartbeat","siteId":"a","clientId":"c1","timestamp":1700000000000}"#),
            Ok(ClientMessage::Heartbeat)
        );
    }

    #[test]
    fn a_page_message_names_a_page_or_none_and_nothing_else() {
        assert_eq!(
            parse(r#"{"type":"page","page":"/docs"}"#),
            Ok(ClientMessage::Page {
                page: Some("/docs".into())
            })
        );
        for off in [r#"{"type":"page","page":null}"#, r#"{"type":"page"}"#] {
            assert_eq!(parse(off), Ok(ClientMessage::Page { page: None }), "{off}");
        }
        assert!(matches!(
            parse(r#"{"type":"page","page":["/docs"]}"#),
            Err(ProtocolError::BadField { field: "page", .. })
        ));
        let v: Value = serde_json::from_str(&page_update(
            Shown::exact(3),
            None,
            Some(Shown::exact(2)),
            None,
        ))
        .expect("json");
        assert_eq!(v, json!({"type": "update", "count": 3, "pageCount": 2}));
        let v: Value =
            serde_json::from_str(&page_update(Shown::exact(3), Some(9), None, None)).expect("json");
        assert_eq!(
            v,
            json!({"type": "update", "count": 3, "totalCount": 9, "pageCount": null})
        );
    }

    #[test]
    fn unknown_or_missing_types_are_ignored_not_errors() {
        assert_eq!(
            parse(r#"{"type":"wave"}"#),
            Ok(ClientMessage::Unknown {
                kind: "wave".into()
            })
        );
        assert_eq!(
            parse(r#"{}"#),
            Ok(ClientMessage::Unknown {
                kind: String::new()
            })
        );
        assert_eq!(
            parse(r#"{"type":7,"siteId":[1]}"#),
            Ok(ClientMessage::Unknown { kind: "7".into() })
        );
        assert_eq!(
            parse(r#"{"type":"join","siteId":5}"#),
            Ok(ClientMessage::Join { site_id: None })
        );
    }

    #[test]
    fn malformed_and_oversize_messages_are_errors() {
        assert!(matches!(
            parse("{not json"),
            Err(ProtocolError::MalformedJson(_))
        ));
        assert!(matches!(parse(""), Err(ProtocolError::MalformedJson(_))));
        assert_eq!(parse("[1,2]"), Err(ProtocolError::NotAnObject));
        assert_eq!(parse("\"join\""), Err(ProtocolError::NotAnObject));
        let big = format!(
            r#"{{"type":"heartbeat","pad":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(parse(&big), Err(ProtocolError::TooBig { len: big.len() }));
    }

    #[test]
    fn server_messages_put_type_first_like_the_original() {
        assert_eq!(
            update(Shown::exact(3), Some(10), None),
            r#"{"type":"update","count":3,"totalCount":10}"#
        );
        assert_eq!(
            update(Shown::exact(3), None, Some(1500)),
            r#"{"type":"update","count":3,"slot":1500}"#
        );
        assert_eq!(heartbeat(5, None), r#"{"type":"heartbeat","timestamp":5}"#);
    }

    #[test]
    fn server_messages_match_the_original_shapes() {
        let v: Value = serde_json::from_str(&update(Shown::exact(3), None, None)).expect("json");
        assert_eq!(v, json!({"type": "update", "count": 3}));
        let v: Value =
            serde_json::from_str(&update(Shown::exact(3), Some(10), None)).expect("json");
        assert_eq!(v, json!({"type": "update", "count": 3, "totalCount": 10}));
        // Below a privacy floor of 5 (see `count::floor`).
        let below = Shown {
            value: 5,
            below_min: true,
        };
        let v: Value = serde_json::from_str(&update(below, None, None)).expect("json");
        assert_eq!(v, json!({"type": "update", "count": 5, "belowMin": true}));
        let v: Value = serde_json::from_str(&page_update(Shown::exact(9), None, Some(below), None))
            .expect("json");
        assert_eq!(
            v,
            json!({"type": "update", "count": 9, "pageCount": 5, "pageBelowMin": true})
        );
        let v: Value = serde_json::from_str(&heartbeat(1_700_000_000, None)).expect("json");
        assert_eq!(
            v,
            json!({"type": "heartbeat", "timestamp": 1_700_000_000u64})
        );
        let v: Value = serde_json::from_str(&heartbeat(5, Some(2))).expect("json");
        assert_eq!(v["totalCount"], 2);
    }

    #[test]
    fn compact_counts_read_as_the_widget_shows_them() {
        assert_eq!(compact(999), None);
        assert_eq!(compact(1000).as_deref(), Some("1K"));
        assert_eq!(compact(1049).as_deref(), Some("1K"));
        // Ties round up, as JavaScript's toFixed does; 1.15 is a double just under 1.15.
        assert_eq!(compact(1250).as_deref(), Some("1.3K"));
        assert_eq!(compact(1150).as_deref(), Some("1.1K"));
        assert_eq!(compact(1050).as_deref(), Some("1.1K"));
        assert_eq!(compact(99_949).as_deref(), Some("99.9K"));
        assert_eq!(compact(99_950).as_deref(), Some("100K"));
        assert_eq!(compact(999_949).as_deref(), Some("999.9K"));
        assert_eq!(compact(999_950).as_deref(), Some("1M"));
        assert_eq!(compact(1_049_999).as_deref(), Some("1M"));
        assert_eq!(compact(1_250_000).as_deref(), Some("1.3M"));
        let shown = Shown::exact;
        assert!(shown(100_010).looks_like(&shown(100_040)));
        assert!(!shown(100_010).looks_like(&shown(100_060)));
        assert!(
            !shown(500).looks_like(&shown(500)),
            "small counts always show"
        );
    }
}
