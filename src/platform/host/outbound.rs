//! Requests to arbitrary URLs through Compute's dynamic backends: one backend per scheme,
//! host and port, made when first needed in an execution (and found by name after that), TLS
//! with SNI and the certificate checked against the host for `https`.

use std::time::Duration;

use fastly::backend::{Backend, BackendCreationError};

use crate::platform::outbound::{
    Outbound, OutboundError, BETWEEN_BYTES_TIMEOUT_MS, CONNECT_TIMEOUT_MS, FIRST_BYTE_TIMEOUT_MS,
};

/// Sends through dynamic backends (`Backend::builder`).
pub struct DynamicBackends;

impl Outbound for DynamicBackends {
    fn send_all(&self, requests: Vec<http::Request<Vec<u8>>>) -> Vec<Result<u16, OutboundError>> {
        let pending: Vec<_> = requests
            .into_iter()
            .map(|req| {
                let backend = backend_for(req.uri())?;
                let (parts, body) = req.into_parts();
                let req: fastly::Request =
                    http::Request::from_parts(parts, fastly::Body::from(body)).into();
                req.send_async(backend)
                    .map_err(|e| OutboundError(e.root_cause().to_string()))
            })
            .collect();
        pending
            .into_iter()
            .map(|p| {
                let resp = p?
                    .wait()
                    .map_err(|e| OutboundError(e.root_cause().to_string()))?;
                Ok(resp.get_status().as_u16())
            })
            .collect()
    }
}

/// The dynamic backend for `uri`'s scheme, host and port.
fn backend_for(uri: &http::Uri) -> Result<Backend, OutboundError> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(OutboundError(format!("not an http(s) URL: {uri}"))),
    };
    let host = uri
        .host()
        .ok_or_else(|| OutboundError(format!("no host in {uri}")))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    // Backend names: letters, digits, `_`, `-`, `.`; one per target, so an execution that
    // sends twice to one receiver (a retry) finds the one it made.
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("hook_{}_{safe}_{port}", if https { "s" } else { "p" });
    let mut builder = Backend::builder(&name, format!("{host}:{port}"))
        .override_host(host)
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .first_byte_timeout(Duration::from_millis(FIRST_BYTE_TIMEOUT_MS))
        .between_bytes_timeout(Duration::from_millis(BETWEEN_BYTES_TIMEOUT_MS));
    if https {
        builder = builder
            .enable_ssl()
            .sni_hostname(host)
            .check_certificate(host);
    }
    match builder.finish() {
        Ok(backend) => Ok(backend),
        Err(BackendCreationError::NameInUse) => {
            Backend::from_name(&name).map_err(|e| OutboundError(e.to_string()))
        }
        Err(BackendCreationError::Disallowed) => Err(OutboundError(
            "dynamic backends are not enabled for this service (ask Fastly support to enable them)"
                .into(),
        )),
        Err(e) => Err(OutboundError(format!("dynamic backend {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str) -> http::Request<Vec<u8>> {
        http::Request::builder()
            .method("POST")
            .uri(url)
            .body(b"{}".to_vec())
            .expect("request")
    }

    #[test]
    fn one_backend_is_made_per_scheme_host_and_port_and_found_again() {
        let uri = |u: &str| u.parse::<http::Uri>().expect("uri");
        let a = backend_for(&uri("https://hooks.example/a")).expect("made");
        let again = backend_for(&uri("https://hooks.example/b?x=1")).expect("found");
        assert_eq!(a.name(), "hook_s_hooks.example_443");
        assert_eq!(again.name(), a.name());
        let plain = backend_for(&uri("http://127.0.0.1:9000/h")).expect("made");
        assert_eq!(plain.name(), "hook_p_127.0.0.1_9000");
        assert!(backend_for(&uri("ftp://hooks.example/")).is_err());
    }

    #[test]
    fn a_receiver_that_is_not_there_is_an_error_not_a_status() {
        // Port 9 on this machine: nothing listens (the discard service is long gone).
        let answers = DynamicBackends.send_all(vec![post("http://127.0.0.1:9/hook")]);
        assert_eq!(answers.len(), 1);
        assert!(answers[0].is_err(), "{:?}", answers[0]);
    }
}
