//! Builders for the responses this service sends.

use http::{header, Response, StatusCode};

use crate::wire::error::HttpError;

/// A JSON error response: `{"error": code, "message": text}` with the error's status.
pub fn error(e: &HttpError) -> Response<Vec<u8>> {
    let mut builder = Response::builder()
        .status(e.status())
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store");
    if let HttpError::MethodNotAllowed { allow } = e {
        builder = builder.header(header::ALLOW, *allow);
    }
    if let HttpError::Unauthorized(_) = e {
        builder = builder.header(header::WWW_AUTHENTICATE, "Bearer");
    }
    if let HttpError::TooMany {
        retry_after_secs, ..
    } = e
    {
        builder = builder.header(header::RETRY_AFTER, retry_after_secs.to_string());
    }
    if let HttpError::UpgradeRequired = e {
        builder = builder
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade");
    }
    finish(builder, e.body().into_bytes())
}

/// A JSON success response.
pub fn json(status: u16, value: &serde_json::Value) -> Response<Vec<u8>> {
    let builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store");
    finish(builder, value.to_string().into_bytes())
}

/// Turns a builder into a response. The builders here only ever get valid static header names
/// and values, so the fallback (a bare 500) is unreachable in practice but never a panic.
pub fn finish(builder: http::response::Builder, body: Vec<u8>) -> Response<Vec<u8>> {
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(Vec::new());
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_not_allowed_carries_allow() {
        let resp = error(&HttpError::MethodNotAllowed { allow: "GET, HEAD" });
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }

    #[test]
    fn upgrade_required_names_websocket() {
        let resp = error(&HttpError::UpgradeRequired);
        assert_eq!(resp.status(), 426);
        assert_eq!(resp.headers()["upgrade"], "websocket");
    }
}
