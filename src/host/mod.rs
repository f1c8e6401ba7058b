//! The real, host-backed services: the Compute API behind the library's traits.
//! Compiled for wasm32 only; exercised by the end-to-end tests under Viceroy.

pub mod cache;
pub mod config_store;
pub mod kv;
pub mod publisher;

use fastly::{Request, Response, SecretStore};

use crate::auth::GripVerifier;
use crate::config::{Config, GripMode};
use crate::fastly_toml;
use crate::secrets::Secrets;

/// The Compute secret store behind [`Secrets`].
pub struct HostSecrets;

impl Secrets for HostSecrets {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        let store = SecretStore::open(fastly_toml::SECRET_STORE).ok()?;
        let secret = store.try_get(name).ok()??;
        Some(secret.plaintext().to_vec())
    }
}

/// The Grip-Sig verifier the configuration asks for (`service_id` names the issuer in
/// production).
pub fn grip_verifier(config: &Config, service_id: &str) -> GripVerifier {
    match config.grip {
        GripMode::PushpinHs256 => match HostSecrets.get(fastly_toml::GRIP_KEY_SECRET) {
            Some(key) if !key.is_empty() => GripVerifier::hs256(&key, &config.grip_hs256_issuer),
            _ => GripVerifier::Unconfigured(format!(
                "secret {} missing from {}",
                fastly_toml::GRIP_KEY_SECRET,
                fastly_toml::SECRET_STORE
            )),
        },
        GripMode::FastlyEs256 => {
            GripVerifier::fastly(service_id).unwrap_or_else(GripVerifier::Unconfigured)
        }
    }
}

/// Converts the client request into the library's request type, reading at most `max_body`
/// bytes of body; a larger body is an error the caller answers with 413.
pub fn into_http_request(req: Request, max_body: usize) -> Result<http::Request<Vec<u8>>, usize> {
    let declared = req
        .get_header_str("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return Err(max_body);
    }
    let http_req: http::Request<fastly::Body> = req.into();
    let (parts, body) = http_req.into_parts();
    let bytes = body.into_bytes();
    if bytes.len() > max_body {
        return Err(max_body);
    }
    Ok(http::Request::from_parts(parts, bytes))
}

/// Sends the library's response to the client.
pub fn send(resp: http::Response<Vec<u8>>) {
    let (parts, body) = resp.into_parts();
    let resp: Response = http::Response::from_parts(parts, fastly::Body::from(body)).into();
    resp.send_to_client();
}
