//! Secrets (the admin token), behind a trait: read from the Compute secret store only when a
//! request needs one; and keys derived from the service's own secret, one per use, for what it
//! signs and checks itself (SSE sessions, census requests).

// The store's and the secrets' names are `fastly_toml`'s.

pub trait Secrets {
    /// The secret's bytes, or `None` when the store or the secret is missing.
    fn get(&self, name: &str) -> Option<Vec<u8>>;
}

/// A key for one use (`label`), derived from the service's own secret: the publish token, or
/// the Grip key where there is none (locally). `None` when the service has neither.
pub fn derived_key(secrets: &dyn Secrets, label: &[u8]) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let secret = secrets
        .get(crate::platform::fastly_toml::PUBLISH_TOKEN_SECRET)
        .or_else(|| secrets.get(crate::platform::fastly_toml::GRIP_KEY_SECRET))?;
    let digest = Sha256::new()
        .chain_update(label)
        .chain_update(b"\0")
        .chain_update(&secret)
        .finalize();
    Some(digest.into())
}

impl Secrets for std::collections::HashMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::collections::HashMap::get(self, name).cloned()
    }
}
