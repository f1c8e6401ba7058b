//! The WebSocket-over-HTTP event codec.
//!
//! Fanout (and Pushpin locally) holds the browser's WebSocket and talks to this service in
//! plain HTTP requests whose bodies are a list of events:
//!
//! ```text
//! TYPE <hex length>\r\n<content>\r\n      an event with content
//! TYPE\r\n                                an event without content
//! ```
//!
//! This module only parses and encodes those bodies. It makes no host calls, so it is tested
//! natively, and it never panics on input: every malformed body is a [`CodecError`].

use std::fmt;

/// The `Content-Type` of request and reply bodies. Pushpin compares it byte for byte, so the
/// reply must carry exactly this, without a charset.
pub const CONTENT_TYPE: &str = "application/websocket-events";

/// The largest body this codec accepts. Pushpin batches events, but one page's messages are
/// tiny; anything near this is abuse, not traffic.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest hex length field accepted (8 hex digits already allows 4 GiB).
const MAX_HEX_DIGITS: usize = 8;

/// One WebSocket-over-HTTP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The connection opened (from the proxy) or is accepted (in a reply).
    Open,
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping frame, with its payload.
    Ping(Vec<u8>),
    /// A pong frame, with its payload.
    Pong(Vec<u8>),
    /// A close frame. `code` is absent when the frame had no payload.
    Close { code: Option<u16>, reason: String },
    /// The connection ended without a close handshake.
    Disconnect,
}

/// Why a body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    TooLarge { len: usize, max: usize },
    /// An event header line has no `\r\n`.
    UnterminatedHeader { offset: usize },
    /// The event type is not one of the seven known types.
    UnknownType { name: String },
    /// The length field is empty, too long or not hexadecimal.
    BadLength { field: String },
    /// The length says more bytes than the body has.
    Truncated {
        offset: usize,
        wanted: usize,
        available: usize,
    },
    /// The content is not followed by `\r\n`.
    MissingTerminator { offset: usize },
    /// A TEXT event is not valid UTF-8.
    InvalidUtf8 { offset: usize },
    /// A CLOSE event has a one-byte payload, or a reason that is not UTF-8.
    BadClosePayload { offset: usize },
    /// An event that never carries content (OPEN, DISCONNECT) has some.
    UnexpectedContent { name: &'static str },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::TooLarge { len, max } => write!(f, "body of {len} bytes exceeds {max}"),
            CodecError::UnterminatedHeader { offset } => {
                write!(f, "event header at byte {offset} has no CRLF")
            }
            CodecError::UnknownType { name } => write!(f, "unknown event type {name:?}"),
            CodecError::BadLength { field } => write!(f, "bad hex length {field:?}"),
            CodecError::Truncated {
                offset,
                wanted,
                available,
            } => write!(
                f,
                "event content at byte {offset} wants {wanted} bytes, body has {available}"
            ),
            CodecError::MissingTerminator { offset } => {
                write!(f, "event content ending at byte {offset} has no CRLF")
            }
            CodecError::InvalidUtf8 { offset } => {
                write!(f, "TEXT event at byte {offset} is not UTF-8")
            }
            CodecError::BadClosePayload { offset } => {
                write!(f, "CLOSE event at byte {offset} has a malformed payload")
            }
            CodecError::UnexpectedContent { name } => write!(f, "{name} event carries content"),
        }
    }
}

impl std::error::Error for CodecError {}

impl Event {
    /// The event's type name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Open => "OPEN",
            Event::Text(_) => "TEXT",
            Event::Binary(_) => "BINARY",
            Event::Ping(_) => "PING",
            Event::Pong(_) => "PONG",
            Event::Close { .. } => "CLOSE",
            Event::Disconnect => "DISCONNECT",
        }
    }

    /// A close event with a code and reason.
    pub fn close(code: u16, reason: &str) -> Event {
        Event::Close {
            code: Some(code),
            reason: reason.to_string(),
        }
    }

    /// Appends this event's wire form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let content: Option<Vec<u8>> = match self {
            Event::Open | Event::Disconnect => None,
            Event::Text(text) => Some(text.as_bytes().to_vec()),
            Event::Binary(bytes) | Event::Ping(bytes) | Event::Pong(bytes) => Some(bytes.clone()),
            Event::Close { code: None, .. } => None,
            Event::Close {
                code: Some(code),
                reason,
            } => {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                Some(payload)
            }
        };
        out.extend_from_slice(self.name().as_bytes());
        if let Some(content) = content {
            out.extend_from_slice(format!(" {:X}\r\n", content.len()).as_bytes());
            out.extend_from_slice(&content);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Encodes a list of events into one body.
pub fn encode(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        event.encode_into(&mut out);
    }
    out
}

/// Parses a whole request body into its events.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, CodecError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(CodecError::TooLarge {
            len: body.len(),
            max: MAX_BODY_BYTES,
        });
    }
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let (event, next) = parse_one(body, pos)?;
        events.push(event);
        pos = next;
    }
    Ok(events)
}

/// Parses the event that starts at `start`; returns it and the offset after it.
fn parse_one(body: &[u8], start: usize) -> Result<(Event, usize), CodecError> {
    let header_end =
        find_crlf(body, start).ok_or(CodecError::UnterminatedHeader { offset: start })?;
    let header = &body[start..header_end];
    let after_header = header_end + 2;

    let (name, length_field) = match header.iter().position(|&b| b == b' ') {
        Some(space) => (&header[..space], Some(&header[space + 1..])),
        None => (header, None),
    };
    let name = std::str::from_utf8(name).map_err(|_| CodecError::UnknownType {
        name: String::from_utf8_lossy(name).into_owned(),
    })?;

    let (content, next) = match length_field {
        None => (None, after_header),
        Some(field) => {
            let len = parse_hex_length(field)?;
            let available = body.len() - after_header;
            if len > available {
                return Err(CodecError::Truncated {
                    offset: after_header,
                    wanted: len,
                    available,
                });
            }
            let content_end = after_header + len;
            if body.get(content_end..content_end + 2) != Some(b"\r\n".as_slice()) {
                return Err(CodecError::MissingTerminator {
                    offset: content_end,
                });
            }
            (Some(&body[after_header..content_end]), content_end + 2)
        }
    };

    let event = build_event(name, content, start)?;
    Ok((event, next))
}

/// Turns a type name and optional content into an [`Event`].
fn build_event(name: &str, content: Option<&[u8]>, offset: usize) -> Result<Event, CodecError> {
    let bytes = || content.unwrap_or_default().to_vec();
    match name {
        "OPEN" => match content {
            // Pushpin may send `OPEN 0`; any real content is a protocol error.
            Some(c) if !c.is_empty() => Err(CodecError::UnexpectedContent { name: "OPEN" }),
            _ => Ok(Event::Open),
        },
        "TEXT" => String::from_utf8(bytes())
            .map(Event::Text)
            .map_err(|_| CodecError::InvalidUtf8 { offset }),
        "BINARY" => Ok(Event::Binary(bytes())),
        "PING" => Ok(Event::Ping(bytes())),
        "PONG" => Ok(Event::Pong(bytes())),
        "CLOSE" => parse_close(content.unwrap_or_default(), offset),
        "DISCONNECT" => match content {
            Some(c) if !c.is_empty() => Err(CodecError::UnexpectedContent { name: "DISCONNECT" }),
            _ => Ok(Event::Disconnect),
        },
        other => Err(CodecError::UnknownType {
            name: other.chars().take(32).collect(),
        }),
    }
}

/// A CLOSE payload is empty, or a big-endian code followed by a UTF-8 reason.
fn parse_close(payload: &[u8], offset: usize) -> Result<Event, CodecError> {
    match payload {
        [] => Ok(Event::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(CodecError::BadClosePayload { offset }),
        [hi, lo, reason @ ..] => {
            let reason = String::from_utf8(reason.to_vec())
                .map_err(|_| CodecError::BadClosePayload { offset })?;
            Ok(Event::Close {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason,
            })
        }
    }
}

fn parse_hex_length(field: &[u8]) -> Result<usize, CodecError> {
    let bad = || CodecError::BadLength {
        field: String::from_utf8_lossy(&field[..field.len().min(16)]).into_owned(),
    };
    if field.is_empty() || field.len() > MAX_HEX_DIGITS || !field.iter().all(u8::is_ascii_hexdigit)
    {
        return Err(bad());
    }
    let text = std::str::from_utf8(field).map_err(|_| bad())?;
    usize::from_str_radix(text, 16).map_err(|_| bad())
}

fn find_crlf(body: &[u8], from: usize) -> Option<usize> {
    body.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_event_type() {
        let body = b"OPEN\r\nTEXT 5\r\nhello\r\nBINARY 2\r\n\x00\xff\r\nPING 1\r\np\r\nPONG\r\nCLOSE 5\r\n\x03\xe8bye\r\nDISCONNECT\r\n";
        let events = parse(body).expect("valid body");
        assert_eq!(
            events,
            vec![
                Event::Open,
                Event::Text("hello".into()),
                Event::Binary(vec![0, 255]),
                Event::Ping(b"p".to_vec()),
                Event::Pong(vec![]),
                Event::close(1000, "bye"),
                Event::Disconnect,
            ]
        );
    }

    #[test]
    fn parses_empty_body_as_no_events() {
        assert_eq!(parse(b""), Ok(vec![]));
    }

    #[test]
    fn accepts_lowercase_hex_and_crlf_inside_content() {
        let content = "abcdefghij\r\nklmnopqrstuvwx"; // 26 bytes = 0x1a
        let body = format!("TEXT 1a\r\n{content}\r\n");
        let events = parse(body.as_bytes()).expect("valid body");
        assert_eq!(events, vec![Event::Text(content.into())]);
    }

    #[test]
    fn close_without_payload_has_no_code() {
        assert_eq!(
            parse(b"CLOSE\r\n"),
            Ok(vec![Event::Close {
                code: None,
                reason: String::new()
            }])
        );
    }

    #[test]
    fn round_trips_every_event_type() {
        let events = vec![
            Event::Open,
            Event::Text("{\"type\":\"join\"}".into()),
            Event::Text(String::new()),
            Event::Binary(vec![1, 2, 3, 13, 10]),
            Event::Ping(vec![9]),
            Event::Pong(vec![]),
            Event::close(4000, "too big"),
            Event::Close {
                code: None,
                reason: String::new(),
            },
            Event::Disconnect,
        ];
        let parsed = parse(&encode(&events)).expect("own encoding parses");
        // An empty PONG encodes as `PONG 0`, which parses back to the same event.
        assert_eq!(parsed, events);
    }

    #[test]
    fn encodes_lengths_in_hex() {
        let body = encode(&[Event::Text("x".repeat(26))]);
        assert!(body.starts_with(b"TEXT 1A\r\n"));
        assert_eq!(encode(&[Event::Open]), b"OPEN\r\n");
        assert_eq!(
            encode(&[Event::close(1000, "")]),
            b"CLOSE 2\r\n\x03\xe8\r\n"
        );
    }

    #[test]
    fn rejects_truncated_content() {
        assert!(matches!(
            parse(b"TEXT 10\r\nshort\r\n"),
            Err(CodecError::Truncated { wanted: 16, .. })
        ));
    }

    #[test]
    fn rejects_missing_header_terminator() {
        assert_eq!(
            parse(b"OPEN"),
            Err(CodecError::UnterminatedHeader { offset: 0 })
        );
        assert_eq!(
            parse(b"OPEN\r\nTEXT 2"),
            Err(CodecError::UnterminatedHeader { offset: 6 })
        );
    }

    #[test]
    fn rejects_missing_content_terminator() {
        assert_eq!(
            parse(b"TEXT 2\r\nhiXX"),
            Err(CodecError::MissingTerminator { offset: 10 })
        );
        assert_eq!(
            parse(b"TEXT 2\r\nhi"),
            Err(CodecError::MissingTerminator { offset: 10 })
        );
    }

    #[test]
    fn rejects_bad_hex() {
        for body in [
            &b"TEXT zz\r\nhi\r\n"[..],
            b"TEXT \r\n\r\n",
            b"TEXT -1\r\n\r\n",
            b"TEXT 0x2\r\nhi\r\n",
            b"TEXT 123456789\r\n\r\n",
            b"TEXT 2 \r\nhi\r\n",
        ] {
            assert!(
                matches!(parse(body), Err(CodecError::BadLength { .. })),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn rejects_a_huge_length_without_allocating() {
        assert!(matches!(
            parse(b"TEXT FFFFFFFF\r\nx\r\n"),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_unknown_types() {
        assert_eq!(
            parse(b"HELLO\r\n"),
            Err(CodecError::UnknownType {
                name: "HELLO".into()
            })
        );
        assert_eq!(
            parse(b"open\r\n"),
            Err(CodecError::UnknownType {
                name: "open".into()
            })
        );
        assert!(matches!(
            parse(b"\xff\xfe 1\r\nx\r\n"),
            Err(CodecError::UnknownType { .. })
        ));
        assert!(matches!(
            parse(b"\r\n"),
            Err(CodecError::UnknownType { .. })
        ));
    }

    #[test]
    fn rejects_oversize_bodies() {
        let body = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse(&body),
            Err(CodecError::TooLarge {
                len: MAX_BODY_BYTES + 1,
                max: MAX_BODY_BYTES
            })
        );
    }

    #[test]
    fn rejects_non_utf8_text_and_bad_close_payloads() {
        assert_eq!(
            parse(b"TEXT 1\r\n\xff\r\n"),
            Err(CodecError::InvalidUtf8 { offset: 0 })
        );
        assert_eq!(
            parse(b"CLOSE 1\r\n\x03\r\n"),
            Err(CodecError::BadClosePayload { offset: 0 })
        );
        assert_eq!(
            parse(b"CLOSE 3\r\n\x03\xe8\xff\r\n"),
            Err(CodecError::BadClosePayload { offset: 0 })
        );
    }

    #[test]
    fn rejects_content_on_open_and_disconnect() {
        assert_eq!(
            parse(b"OPEN 1\r\nx\r\n"),
            Err(CodecError::UnexpectedContent { name: "OPEN" })
        );
        assert_eq!(parse(b"OPEN 0\r\n\r\n"), Ok(vec![Event::Open]));
        assert_eq!(
            parse(b"DISCONNECT 1\r\nx\r\n"),
            Err(CodecError::UnexpectedContent { name: "DISCONNECT" })
        );
    }

    #[test]
    fn never_panics_on_arbitrary_prefixes() {
        let body = encode(&[
            Event::Open,
            Event::Text("héllo".into()),
            Event::close(1001, "away"),
        ]);
        for end in 0..body.len() {
            let _ = parse(&body[..end]);
        }
        // And on every single-byte corruption of a valid body.
        for i in 0..body.len() {
            for b in [0u8, b' ', b'\r', b'\n', b'F', 0xff] {
                let mut copy = body.clone();
                copy[i] = b;
                let _ = parse(&copy);
            }
        }
    }
}
