//! A stored key, its bytes kept inside the store's own map where they fit.
//!
//! A count at a million readers lists two million keys a second of the simulated run. Kept as
//! `String`s, every key's bytes sit somewhere else on the heap, and reading them in order
//! (to compare, to copy into a page) was a fifth of the run, most of it waiting on memory.
//! Presence keys are under a hundred bytes, so they are kept in the map's nodes, beside their
//! neighbours in listing order.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

/// The longest key kept inline (presence keys with a page are about 95 bytes).
const INLINE: usize = 118;

#[derive(Clone)]
pub(super) enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Key {
    pub(super) fn new(key: &str) -> Key {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(key.into())
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            Key::Inline { len, bytes } => {
                // SAFETY: `bytes[..len]` was copied whole from a `&str` in `new`, so it is
                // UTF-8 (validating it again on every comparison is what this type saves).
                unsafe { std::str::from_utf8_unchecked(&bytes[..usize::from(*len)]) }
            }
            Key::Heap(s) => s,
        }
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// As `str` orders (the map is searched by `&str` through `Borrow`, so they must agree).
impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_inline_and_on_the_heap_order_as_their_text() {
        let long = "k".repeat(INLINE + 1);
        let texts = ["", "a", "a/b", "ab", "é", &long, &"k".repeat(INLINE), "z"];
        let mut keys: Vec<Key> = texts.iter().map(|t| Key::new(t)).collect();
        keys.sort();
        let mut sorted = texts.to_vec();
        sorted.sort();
        let back: Vec<&str> = keys.iter().map(Key::as_str).collect();
        assert_eq!(back, sorted);
        assert!(matches!(Key::new(&long), Key::Heap(_)));
        assert!(matches!(Key::new(&"k".repeat(INLINE)), Key::Inline { .. }));
    }

    #[test]
    fn a_map_of_keys_is_searched_by_text() {
        let mut map = BTreeMap::new();
        for t in ["site/a/p/1", "site/a/p/2", "site/b/p/1"] {
            map.insert(Key::new(t), t.len());
        }
        assert_eq!(map.get("site/a/p/2"), Some(&10));
        let under: Vec<&str> = map
            .range::<str, _>((
                std::ops::Bound::Included("site/a/"),
                std::ops::Bound::Excluded("site/a0"),
            ))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(under, ["site/a/p/1", "site/a/p/2"]);
    }
}
