//! Static files from `static/`, compiled into the binary.
//!
//! Compute has no file system at run time, so the files are embedded. Each has a content type
//! and a strong ETag (a hash of its bytes, computed once per request that asks for it).

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Every file served, by request path.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../static/index.html"),
    },
    Asset {
        path: "/static/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../static/style.css"),
    },
    Asset {
        path: "/favicon.ico",
        content_type: "image/svg+xml",
        body: include_bytes!("../static/favicon.svg"),
    },
];

/// The asset served at `path`, if any.
pub fn lookup(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

impl Asset {
    /// A strong ETag: FNV-1a over the bytes, quoted. Stable across builds of the same file.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", fnv1a(self.body))
    }
}

/// 64-bit FNV-1a: tiny, dependency-free, and good enough to tell file versions apart.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_index_and_the_stylesheet() {
        assert_eq!(
            lookup("/").map(|a| a.content_type),
            Some("text/html; charset=utf-8")
        );
        assert!(lookup("/static/style.css").is_some());
        assert!(lookup("/static/../Cargo.toml").is_none());
        assert!(lookup("/nope").is_none());
    }

    #[test]
    fn etags_are_quoted_and_differ_between_files() {
        let a = lookup("/").map(Asset::etag);
        let b = lookup("/static/style.css").map(Asset::etag);
        assert!(a
            .as_deref()
            .is_some_and(|e| e.starts_with('"') && e.ends_with('"')));
        assert_ne!(a, b);
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
