//! Small readers over an incoming request: query parameters and headers as text.

use http::Request;

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param(req: &Request<Vec<u8>>, name: &str) -> Option<String> {
    query_value(req.uri().query(), name)
}

/// The first value of parameter `name` in a raw query string, percent-decoded.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A boolean query value: `true`/`false`/`1`/`0` (any case); anything else is `None`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A header's value as text; absent when missing or not visible ASCII.
pub fn header<'a>(req: &'a Request<Vec<u8>>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether a header value lists `token` (comma-separated, case-insensitive), as
/// `Connection: keep-alive, Upgrade` does.
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The network address of the client that sent a request, as the host put it in the request's
/// extensions (absent in requests that did not come from a client, such as Fanout's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<Vec<u8>> {
        Request::builder()
            .uri(uri)
            .header("Upgrade", "WebSocket")
            .header("Connection", "keep-alive, Upgrade")
            .body(Vec::new())
            .expect("request")
    }

    #[test]
    fn reads_decoded_query_parameters() {
        let req = get("/ws?siteId=my%2Dsite&clientId=a+b&siteId=second");
        assert_eq!(query_param(&req, "siteId").as_deref(), Some("my-site"));
        assert_eq!(query_param(&req, "clientId").as_deref(), Some("a b"));
        assert_eq!(query_param(&req, "missing"), None);
        assert_eq!(query_param(&get("/ws"), "siteId"), None);
    }

    #[test]
    fn parses_booleans_strictly() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool(""), None);
    }

    #[test]
    fn finds_header_tokens_case_insensitively() {
        let req = get("/ws");
        assert!(header(&req, "connection").is_some_and(|v| has_token(v, "upgrade")));
        assert!(header(&req, "upgrade").is_some_and(|v| has_token(v, "websocket")));
        assert!(!has_token("websocket", "h2c"));
        assert_eq!(header(&req, "upgrade"), Some("WebSocket"));
    }
}
