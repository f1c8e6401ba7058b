//! Errors that end a request, and how each one is shown to the client.
//!
//! Every error has one HTTP status and one stable machine-readable `error` code; the JSON body
//! is `{"error": code, "message": text}`. Errors inside an open WebSocket are not HTTP errors:
//! they close that one connection with a WebSocket close code (see [`CloseCode`]).

use std::fmt;

use crate::wire::site::SiteIdError;
use crate::wire::websocket_events::CodecError;

/// An error answered with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No route for this path.
    NotFound,
    /// The path exists, but not for this method.
    MethodNotAllowed { allow: &'static str },
    /// A plain request to the WebSocket endpoint.
    UpgradeRequired,
    /// The site id is missing its rules.
    BadSiteId(SiteIdError),
    /// A query parameter or body is malformed.
    BadRequest(String),
    /// A named parameter is out of its rules: its own stable code (`invalid_label`, …).
    InvalidParameter { code: &'static str, message: String },
    /// A WebSocket-over-HTTP body that does not parse.
    BadEvents(CodecError),
    /// An admin request without a valid bearer token.
    Unauthorized(String),
    /// The endpoint is switched off, or the request's origin may not use it.
    Forbidden(String),
    /// A request that must be signed (by Fanout, or by this service for its own calls) is not,
    /// or its signature does not verify. The body says only that: why (`reason`: missing,
    /// expired, which check failed) is for the log, not for whoever is probing the verifier.
    NotSigned { reason: String },
    /// The endpoint is retired: what replaced it.
    Gone(String),
    /// The body is larger than allowed.
    PayloadTooLarge { max: usize },
    /// The service has a registry of sites (config `sites`) and this one is not in it.
    UnknownSite,
    /// A site's webhook that does not exist: which.
    UnknownHook(String),
    /// A versioned script this build does not serve (an embed pinned before the client
    /// changed): where the current one is.
    UnknownVersion { current: String },
    /// One client asked for more than its share: `what` it exceeded, and when to come back.
    TooMany {
        what: &'static str,
        retry_after_secs: u32,
    },
    /// A content type this endpoint does not take.
    UnsupportedMediaType,
    /// A store or backend we depend on failed; trying again later may work.
    Unavailable(String),
    /// Something on our side failed.
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::NotFound => 404,
            HttpError::MethodNotAllowed { .. } => 405,
            HttpError::UpgradeRequired => 426,
            HttpError::BadSiteId(_)
            | HttpError::BadRequest(_)
            | HttpError::InvalidParameter { .. }
            | HttpError::BadEvents(_) => 400,
            HttpError::Unauthorized(_) => 401,
            HttpError::Forbidden(_) | HttpError::NotSigned { .. } => 403,
            HttpError::Gone(_) => 410,
            HttpError::PayloadTooLarge { .. } => 413,
            HttpError::UnknownSite
            | HttpError::UnknownHook(_)
            | HttpError::UnknownVersion { .. } => 404,
            HttpError::TooMany { .. } => 429,
            HttpError::UnsupportedMediaType => 415,
            HttpError::Unavailable(_) => 503,
            HttpError::Internal(_) => 500,
        }
    }

    /// The stable code in the JSON body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::NotFound => "not_found",
            HttpError::MethodNotAllowed { .. } => "method_not_allowed",
            HttpError::UpgradeRequired => "upgrade_required",
            HttpError::BadSiteId(_) => "invalid_site_id",
            HttpError::BadRequest(_) => "bad_request",
            HttpError::InvalidParameter { code, .. } => code,
            HttpError::BadEvents(_) => "bad_websocket_events",
            HttpError::Unauthorized(_) => "unauthorized",
            HttpError::Forbidden(_) | HttpError::NotSigned { .. } => "forbidden",
            HttpError::Gone(_) => "gone",
            HttpError::PayloadTooLarge { .. } => "payload_too_large",
            HttpError::UnknownSite => "unknown_site",
            HttpError::UnknownHook(_) => "unknown_hook",
            HttpError::UnknownVersion { .. } => "unknown_version",
            HttpError::TooMany { .. } => "too_many_requests",
            HttpError::UnsupportedMediaType => "unsupported_media_type",
            HttpError::Unavailable(_) => "unavailable",
            HttpError::Internal(_) => "internal_error",
        }
    }

    /// What the log says beyond the body, if anything.
    pub fn reason(&self) -> Option<&str> {
        match self {
            HttpError::NotSigned { reason } => Some(reason),
            _ => None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.code(), "message": self.to_string() }).to_string()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::NotFound => write!(f, "no such resource"),
            HttpError::MethodNotAllowed { allow } => write!(f, "method not allowed; use {allow}"),
            HttpError::UpgradeRequired => write!(
                f,
                "this endpoint speaks WebSocket only; connect with a WebSocket client"
            ),
            HttpError::BadSiteId(e) => write!(f, "{e}"),
            HttpError::BadRequest(msg) | HttpError::InvalidParameter { message: msg, .. } => {
                write!(f, "{msg}")
            }
            HttpError::BadEvents(e) => write!(f, "malformed WebSocket-over-HTTP body: {e}"),
            HttpError::Unauthorized(msg)
            | HttpError::Forbidden(msg)
            | HttpError::Gone(msg)
            | HttpError::UnknownHook(msg) => {
                write!(f, "{msg}")
            }
            HttpError::NotSigned { .. } => write!(f, "this endpoint takes signed requests only"),
            HttpError::PayloadTooLarge { max } => write!(f, "body larger than {max} bytes"),
            HttpError::UnknownSite => write!(f, "this service does not serve that site"),
            HttpError::UnknownVersion { current } => write!(
                f,
                "this version of the script is not served any more; the current one is {current}"
            ),
            HttpError::TooMany {
                what,
                retry_after_secs,
            } => write!(
                f,
                "too many {what} from your network; try again in {retry_after_secs} s"
            ),
            HttpError::UnsupportedMediaType => write!(f, "unsupported content type"),
            HttpError::Unavailable(msg) => write!(f, "temporarily unavailable: {msg}"),
            HttpError::Internal(msg) => write!(f, "internal error: {msg}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<SiteIdError> for HttpError {
    fn from(e: SiteIdError) -> Self {
        HttpError::BadSiteId(e)
    }
}

impl From<CodecError> for HttpError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::TooLarge { max, .. } => HttpError::PayloadTooLarge { max },
            other => HttpError::BadEvents(other),
        }
    }
}

/// WebSocket close codes this service sends (RFC 6455 section 7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The peer closed; we answer in kind.
    Normal,
    /// A kind of frame the protocol does not use (binary).
    UnsupportedData,
    /// A text message that is not a JSON object.
    InvalidPayload,
    /// A message larger than allowed.
    MessageTooBig,
}

impl CloseCode {
    /// Whether `code` may appear in a close frame on the wire (RFC 6455 7.4 and IANA's
    /// registry): the defined codes 1000–1003 and 1007–1014, and 3000–4999 for libraries and
    /// applications. 1004 is reserved, 1005, 1006 and 1015 are never sent, and 1016–2999 are
    /// reserved for the protocol.
    pub fn may_be_sent(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::UnsupportedData => 1003,
            CloseCode::InvalidPayload => 1007,
            CloseCode::MessageTooBig => 1009,
        }
    }

    /// The reason sent with the code (short: close reasons are capped at 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "",
            CloseCode::UnsupportedData => "binary messages are not supported",
            CloseCode::InvalidPayload => "message is not a JSON object",
            CloseCode::MessageTooBig => "message larger than 4096 bytes",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_refused_gives_no_reason_in_its_body() {
        for reason in [
            "Grip-Sig cannot be verified: no grip_hs256_key in store liveuser_secrets",
            "Grip-Sig expired",
            "census request not signed by this service",
        ] {
            let e = HttpError::NotSigned {
                reason: reason.into(),
            };
            assert_eq!(e.status(), 403);
            assert!(!e.body().contains(reason));
            assert!(!e.body().contains("Grip") && !e.body().contains("liveuser_secrets"));
            assert_eq!(e.reason(), Some(reason));
        }
    }

    #[test]
    fn every_error_has_a_json_body_with_its_code() {
        let errors = [
            HttpError::NotFound,
            HttpError::MethodNotAllowed { allow: "GET" },
            HttpError::UpgradeRequired,
            HttpError::BadSiteId(SiteIdError::Empty),
            HttpError::BadRequest("x".into()),
            HttpError::BadEvents(CodecError::UnknownType { name: "X".into() }),
            HttpError::Unauthorized("who".into()),
            HttpError::Forbidden("no".into()),
            HttpError::NotSigned { reason: "x".into() },
            HttpError::Gone("see /b".into()),
            HttpError::PayloadTooLarge { max: 1 },
            HttpError::UnsupportedMediaType,
            HttpError::Unavailable("kv".into()),
            HttpError::Internal("x".into()),
        ];
        for e in errors {
            let body: serde_json::Value = serde_json::from_str(&e.body()).expect("json");
            assert_eq!(body["error"], e.code());
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!((400..600).contains(&e.status()));
        }
    }

    #[test]
    fn codec_size_errors_become_413() {
        let e: HttpError = CodecError::TooLarge { len: 9, max: 8 }.into();
        assert_eq!(e.status(), 413);
        let e: HttpError = CodecError::BadLength { field: "z".into() }.into();
        assert_eq!(e.status(), 400);
    }
}
