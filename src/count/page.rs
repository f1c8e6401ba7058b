//! Per-page counts ("N reading this page"): a reader may name the page it is on (`page`, a
//! path or any key up to [`MAX_PAGE_LEN`] visible ASCII characters), and is then counted on
//! that page too. The page itself is never stored, published or logged: a page id, the first
//! 64 bits of SHA-256 of the site and page, stands for it in keys, channels and snapshots.
//!
//! A site has at most [`MAX_PAGES`] pages with counts: the busiest ones, as the last broadcast
//! found them. A reader of any other page is still counted on the site, and is told its page
//! has no count (`pageCount: null`), so the widget can say so rather than show a wrong number.

use sha2::{Digest, Sha256};

use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// The longest page name accepted.
pub const MAX_PAGE_LEN: usize = 256;
/// The most pages of one site with counts.
pub const MAX_PAGES: usize = 50;
/// The most page moves (a single-page app's navigations) one connection makes; later ones
/// are logged and not taken (the reader stays counted on its last page).
pub const MAX_MOVES: u32 = 100;

/// The id of `page` on `site`, after checking the page name.
pub fn id(site: &SiteId, page: &str) -> Result<String, HttpError> {
    let valid = !page.is_empty()
        && page.len() <= MAX_PAGE_LEN
        && page.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(HttpError::InvalidParameter {
            code: "invalid_page",
            message: format!(
                "page must be 1–{MAX_PAGE_LEN} visible ASCII characters (percent-encode the rest)"
            ),
        });
    }
    let digest = Sha256::new()
        .chain_update(site.as_str().as_bytes())
        .chain_update([0u8])
        .chain_update(page.as_bytes())
        .finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `text` is a page id as [`id`] makes them.
pub fn is_page_id(text: &str) -> bool {
    text.len() == 16
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The channel a page's readers listen on: page counts only (the site's own channel still
/// carries the site count, and totals to those that asked).
pub fn channel(site: &SiteId, page_id: &str) -> String {
    format!("page:{site}:{page_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ids_are_per_site_and_pages_are_checked() {
        let (a, b) = (
            SiteId::parse("a").expect("site"),
            SiteId::parse("b").expect("site"),
        );
        let id_a = id(&a, "/docs/intro").expect("id");
        assert!(is_page_id(&id_a));
        assert_eq!(id_a, id(&a, "/docs/intro").expect("id"));
        assert_ne!(id_a, id(&b, "/docs/intro").expect("id"));
        assert_ne!(id_a, id(&a, "/docs/other").expect("id"));
        for bad in ["", "/a b", "/é", &"x".repeat(MAX_PAGE_LEN + 1)] {
            assert_eq!(id(&a, bad).map_err(|e| e.status()), Err(400), "{bad:?}");
        }
        assert!(id(&a, &"x".repeat(MAX_PAGE_LEN)).is_ok());
        assert!(!is_page_id("/docs/intro"));
    }
}
