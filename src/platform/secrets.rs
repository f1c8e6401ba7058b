//! Secrets (the admin token), behind a trait: read from the Compute secret store only when a
//! request needs one; and keys derived from the service's own secret, one per use, for what it
//! signs and checks itself (SSE sessions, census requests, the limits' daily keys, page ids),
//! and the one HMAC they are all made with.

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

/// HMAC-SHA256 of `parts`, one after the other, under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this arm is never taken.
        Hmac::<sha2::Sha256>::new_from_slice(b"liveuser").expect("a fixed key")
    });
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The first `n` bytes of `digest`, in lowercase hex.
pub fn hex_prefix(digest: &[u8], n: usize) -> String {
    digest.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

impl Secrets for std::collections::HashMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::collections::HashMap::get(self, name).cloned()
    }
}
