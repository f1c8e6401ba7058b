//! The admin endpoints' credential: `Authorization: Bearer <admin token>`, compared in
//! constant time with the `admin_token` secret.

use http::Request;
use sha2::{Digest, Sha256};

use crate::platform::Services;
use crate::platform::{fastly_toml, secrets};
use crate::wire::error::HttpError;
use crate::wire::request;

/// Why an admin request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// The service has no admin token: admin endpoints are off.
    NotConfigured,
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is not the admin token.
    Wrong,
}

/// Refuses a request without the admin token: 403 while the service has none, 401 when the
/// header is missing or wrong.
pub fn authorize(req: &Request<Vec<u8>>, services: &Services) -> Result<(), HttpError> {
    let admin_token = services.secrets.get(fastly_toml::ADMIN_TOKEN_SECRET);
    check_bearer(
        request::header(req, "authorization"),
        admin_token.as_deref(),
    )
    .map_err(|e| match e {
        BearerError::NotConfigured => HttpError::Forbidden(
            "admin endpoints are disabled: no admin token is configured".into(),
        ),
        BearerError::Missing => {
            HttpError::Unauthorized("missing Authorization: Bearer <admin token>".into())
        }
        BearerError::Wrong => HttpError::Unauthorized("wrong admin token".into()),
    })
}

/// Checks an `Authorization` header against the admin token, in constant time.
pub fn check_bearer(
    authorization: Option<&str>,
    admin_token: Option<&[u8]>,
) -> Result<(), BearerError> {
    let expected = admin_token
        .filter(|t| !t.is_empty())
        .ok_or(BearerError::NotConfigured)?;
    let given = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(BearerError::Missing)?;
    if constant_time_eq(given.as_bytes(), expected) {
        Ok(())
    } else {
        Err(BearerError::Wrong)
    }
}

/// Compares SHA-256 digests byte by byte without an early exit, so neither the position of
/// the first difference nor the token's length shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    secrets::constant_time_eq(&Sha256::digest(a), &Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_checked() {
        let token = Some(&b"s3cret"[..]);
        assert_eq!(check_bearer(Some("Bearer s3cret"), token), Ok(()));
        assert_eq!(
            check_bearer(Some("Bearer s3cre"), token),
            Err(BearerError::Wrong)
        );
        assert_eq!(
            check_bearer(Some("Bearer s3cretX"), token),
            Err(BearerError::Wrong)
        );
        assert_eq!(
            check_bearer(Some("Basic s3cret"), token),
            Err(BearerError::Missing)
        );
        assert_eq!(
            check_bearer(Some("Bearer "), token),
            Err(BearerError::Missing)
        );
        assert_eq!(check_bearer(None, token), Err(BearerError::Missing));
        assert_eq!(
            check_bearer(Some("Bearer s3cret"), None),
            Err(BearerError::NotConfigured)
        );
        assert_eq!(
            check_bearer(Some("Bearer "), Some(b"")),
            Err(BearerError::NotConfigured)
        );
    }
}
