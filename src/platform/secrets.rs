//! Secrets (the admin token), behind a trait: read from the Compute secret store only when a
//! request needs one.

// The store's and the secrets' names are `fastly_toml`'s.

pub trait Secrets {
    /// The secret's bytes, or `None` when the store or the secret is missing.
    fn get(&self, name: &str) -> Option<Vec<u8>>;
}

impl Secrets for std::collections::HashMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::collections::HashMap::get(self, name).cloned()
    }
}
