//! Secrets (the admin token), behind a trait: read from the Compute secret store only when a
//! request needs one; and keys derived from the service's own secret, one per use, for what it
//! signs and checks itself (census requests, the limits' daily keys, page ids); the key ring
//! SSE sessions are signed with, which rotates without ending a session; and the one HMAC they
//! are all made with.

// The store's and the secrets' names are `fastly_toml`'s.

pub trait Secrets {
    /// The secret's bytes, or `None` when the store or the secret is missing.
    fn get(&self, name: &str) -> Option<Vec<u8>>;
}

/// A key for one use (`label`), derived from the service's own secret: the publish token, or
/// the Grip key where there is none (locally). `None` when the service has neither.
pub fn derived_key(secrets: &dyn Secrets, label: &[u8]) -> Option<[u8; 32]> {
    let secret = secrets
        .get(crate::platform::fastly_toml::PUBLISH_TOKEN_SECRET)
        .or_else(|| secrets.get(crate::platform::fastly_toml::GRIP_KEY_SECRET))?;
    Some(label_key(label, &secret))
}

/// One of the two secrets a [`KeyRing`] is made from (the `session_key` config item names the
/// one that signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    A,
    B,
}

impl KeySlot {
    /// The id a signature names its key by.
    fn id(self) -> char {
        match self {
            KeySlot::A => 'a',
            KeySlot::B => 'b',
        }
    }
}

/// The id of the key derived from the service's own secret ([`derived_key`]), used while no
/// slot is set.
const DERIVED_KEY_ID: char = 'p';

/// A key that signs and the keys that still verify, each named by a one-letter id the
/// signature carries: rotating one (writing the other slot, then naming it in config) leaves
/// what the old key signed valid, so a rotation ends nobody's session. The slots' values are
/// hashed with the key's use (`label`), so one secret gives a different key to each use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    signing: (char, [u8; 32]),
    verifying: Vec<(char, [u8; 32])>,
}

impl KeyRing {
    /// The ring for `label`: the slots that are set, signed with `signing` (or the other slot
    /// while `signing` is not set yet, as a POP may see a rotation's config before its
    /// secret), and the key derived from the service's own secret, which signs only while no
    /// slot is set (so sessions from before the first slot stay valid). `None` without any.
    pub fn load(secrets: &dyn Secrets, signing: KeySlot, label: &[u8]) -> Option<KeyRing> {
        let mut verifying = Vec::new();
        let slots = [KeySlot::A, KeySlot::B];
        for (name, slot) in crate::platform::fastly_toml::SESSION_KEY_SECRETS
            .into_iter()
            .zip(slots)
        {
            if let Some(secret) = secrets.get(name).filter(|s| !s.is_empty()) {
                verifying.push((slot.id(), label_key(label, &secret)));
            }
        }
        let derived = derived_key(secrets, label).map(|k| (DERIVED_KEY_ID, k));
        let signing = verifying
            .iter()
            .find(|(id, _)| *id == signing.id())
            .or(verifying.first())
            .copied()
            .or(derived)?;
        verifying.extend(derived);
        Some(KeyRing { signing, verifying })
    }

    /// The key new signatures are made with, and its id.
    pub fn signing(&self) -> (char, &[u8; 32]) {
        (self.signing.0, &self.signing.1)
    }

    /// The key a signature naming `id` is checked against, if it still verifies.
    pub fn verifying(&self, id: char) -> Option<&[u8; 32]> {
        self.verifying
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, key)| key)
    }
}

fn label_key(label: &[u8], secret: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(label)
        .chain_update(b"\0")
        .chain_update(secret)
        .finalize()
        .into()
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

/// Whether `a` and `b` are equal, compared without an early exit: how long it takes tells
/// nothing of where they first differ (their lengths are not hidden).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fastly_toml::{GRIP_KEY_SECRET, PUBLISH_TOKEN_SECRET};
    use std::collections::HashMap;

    fn secrets(entries: &[(&str, &str)]) -> HashMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn without_a_slot_the_ring_signs_with_the_services_own_secret() {
        let only = secrets(&[(PUBLISH_TOKEN_SECRET, "token")]);
        let ring = KeyRing::load(&only, KeySlot::A, b"use").expect("a ring");
        let derived = derived_key(&only, b"use").expect("a key");
        assert_eq!(ring.signing(), ('p', &derived));
        assert_eq!(ring.verifying('p'), Some(&derived));
        assert_eq!(ring.verifying('a'), None);
        assert_eq!(KeyRing::load(&secrets(&[]), KeySlot::A, b"use"), None);
    }

    #[test]
    fn the_named_slot_signs_and_every_set_key_verifies() {
        let all = secrets(&[
            (GRIP_KEY_SECRET, "grip"),
            ("session_key_a", "old"),
            ("session_key_b", "new"),
        ]);
        let ring = KeyRing::load(&all, KeySlot::B, b"use").expect("a ring");
        assert_eq!(ring.signing().0, 'b');
        for id in ['a', 'b', 'p'] {
            assert!(ring.verifying(id).is_some(), "{id} verifies");
        }
        assert_ne!(ring.verifying('a'), ring.verifying('b'));
        assert_eq!(ring.verifying('c'), None);
        // Each use has its own key from the same secret.
        let other = KeyRing::load(&all, KeySlot::B, b"other use").expect("a ring");
        assert_ne!(other.signing().1, ring.signing().1);
    }

    #[test]
    fn a_named_slot_not_set_yet_leaves_the_other_signing() {
        let half = secrets(&[("session_key_a", "old"), ("session_key_b", "")]);
        let ring = KeyRing::load(&half, KeySlot::B, b"use").expect("a ring");
        assert_eq!(ring.signing().0, 'a');
        assert_eq!(ring.verifying('b'), None);
    }
}
