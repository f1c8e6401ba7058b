//! Secrets (the admin token), behind a trait: read from the Compute secret store only when a
//! request needs one.

/// The secret store's name in `fastly.toml` and on the service.
pub const STORE_NAME: &str = "liveuser_secrets";
/// The bearer token admin endpoints require. Without it they answer 403.
pub const ADMIN_TOKEN: &str = "admin_token";
/// The key local Pushpin signs its calls with (HS256).
pub const GRIP_HS256_KEY: &str = "grip_hs256_key";

pub trait Secrets {
    /// The secret's bytes, or `None` when the store or the secret is missing.
    fn get(&self, name: &str) -> Option<Vec<u8>>;
}

impl Secrets for std::collections::HashMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::collections::HashMap::get(self, name).cloned()
    }
}
