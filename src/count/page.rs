//! Per-page counts ("N reading this page"): a reader may name the page it is on (`page`, a
//! path or any key up to [`MAX_PAGE_LEN`] visible ASCII characters), and is then counted on
//! that page too. The page itself is never published or logged, and stored only for the site's
//! owner ([`remember_name`]): a page id stands for it in keys, channels and snapshots, the first 64 bits of an HMAC-SHA-256 of the site and page
//! under a key derived from the service's secret. A bare hash would not hide the page: anyone
//! can hash a site's likely paths and match them. (A service with no secret at all, which no
//! deploy is, keys with an empty key.) Rotating that secret changes every page id: a page is
//! looked up under its new id, while connected readers stay counted under the old one until they
//! reconnect or move.
//!
//! A site has at most [`MAX_PAGES`] pages with counts: the busiest ones, as the last broadcast
//! found them. A reader of any other page is still counted on the site, and is told its page
//! has no count (`pageCount: null`), so the widget can say so rather than show a wrong number.
//! A site may list the page prefixes it counts (`pages.<siteId>`, see `registry`): a page
//! outside them is counted on the site only, so pages someone invents (50 of them, each with a
//! reader) cannot crowd the real ones out of the busiest.

use crate::count::registry;
use crate::platform::secrets::{derived_key, hex_prefix, hmac_sha256, Secrets};
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// The longest page name accepted.
pub const MAX_PAGE_LEN: usize = 256;
/// The most pages of one site with counts.
pub const MAX_PAGES: usize = 50;
/// The most page moves (a single-page app's navigations) one connection makes; later ones
/// are logged and not taken (the reader stays counted on its last page).
pub const MAX_MOVES: u32 = 100;
/// The shortest time between two page moves of one connection, in milliseconds: a move
/// costs KV writes, and a page changing its URL in a loop must not cost more than this pace.
pub const MOVE_INTERVAL_MS: u64 = 2_000;

/// What page ids are keyed under (see `secrets::derived_key`).
const PAGE_KEY_LABEL: &[u8] = b"liveuser page ids";

/// Checks a page name: 1–[`MAX_PAGE_LEN`] visible ASCII characters.
pub fn check(page: &str) -> Result<(), HttpError> {
    let valid = !page.is_empty()
        && page.len() <= MAX_PAGE_LEN
        && page.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        return Ok(());
    }
    Err(HttpError::InvalidParameter {
        code: "invalid_page",
        message: format!(
            "page must be 1–{MAX_PAGE_LEN} visible ASCII characters (percent-encode the rest)"
        ),
    })
}

/// The id of `page` on `site`, after checking the page name.
pub fn id(secrets: &dyn Secrets, site: &SiteId, page: &str) -> Result<String, HttpError> {
    check(page)?;
    let key = derived_key(secrets, PAGE_KEY_LABEL).unwrap_or_default();
    let digest = hmac_sha256(&key, &[site.as_str().as_bytes(), &[0u8], page.as_bytes()]);
    Ok(hex_prefix(&digest, 8))
}

/// The id `page` is counted under on `site`, after checking the page name: `None` when the
/// site lists the page prefixes it counts and `page` starts with none of them.
pub fn counted_id(
    services: &Services,
    site: &SiteId,
    page: &str,
) -> Result<Option<String>, HttpError> {
    check(page)?;
    let listed = registry::page_prefixes(services, site)
        .is_none_or(|prefixes| prefixes.iter().any(|p| page.starts_with(p.as_str())));
    listed.then(|| id(services.secrets, site, page)).transpose()
}

/// Whether `text` is a page id as [`id`] makes them.
pub fn is_page_id(text: &str) -> bool {
    text.len() == 16
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How long a page's name is kept for the site's dashboard after a reader was last seen
/// arriving on it, in seconds: a day.
pub const NAME_TTL_SECS: u32 = 86_400;

/// How long a POP remembers having stored a page's name: it stores it again (renewing its
/// lifetime) only once this has passed and another reader arrives on the page.
const NAME_STORED_MS: u64 = 3_600_000;

/// Where a page's name is kept for the site's dashboard: the one place a page's name is
/// stored, readable only through the dashboard (its key, or the admin token).
pub fn name_key(site: &SiteId, page_id: &str) -> String {
    format!("{}n/{page_id}", site.listing_prefix())
}

/// Keeps the name of page `page_id` (a counted reader arrived on it) so the site's dashboard
/// can show it: one write per page per POP per hour at most, and best effort (a page whose name
/// could not be stored shows as its id).
pub fn remember_name(services: &Services, site: &SiteId, page_id: &str, name: &str) {
    let key = name_key(site, page_id);
    let marker = format!("page-name/{site}/{page_id}");
    if services.cache.get(&marker).is_some() {
        return;
    }
    let stored = services.kv.insert(
        &key,
        name.as_bytes(),
        Some(NAME_TTL_SECS),
        crate::platform::kv::WriteMode::Overwrite,
    );
    if stored.is_ok() {
        services.cache.set(&marker, b"1", NAME_STORED_MS);
    }
}

/// The names of `page_ids` that are known (a lookup each; the dashboard asks for the busiest
/// pages only, at most [`MAX_PAGES`]).
pub fn names(
    services: &Services,
    site: &SiteId,
    page_ids: &[&str],
) -> std::collections::BTreeMap<String, String> {
    page_ids
        .iter()
        .take(MAX_PAGES)
        .filter(|id| is_page_id(id))
        .filter_map(|id| {
            let found = services.kv.lookup(&name_key(site, id)).ok()??;
            let name = String::from_utf8(found.value).ok()?;
            check(&name).ok()?;
            Some((id.to_string(), name))
        })
        .collect()
}

/// The channel a page's readers listen on: page counts only (the site's own channel still
/// carries the site count, and totals to those that asked).
pub fn channel(site: &SiteId, page_id: &str) -> String {
    format!("page:{site}:{page_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fastly_toml::GRIP_KEY_SECRET;
    use std::collections::HashMap;

    fn secrets(secret: &[u8]) -> HashMap<String, Vec<u8>> {
        HashMap::from([(GRIP_KEY_SECRET.to_string(), secret.to_vec())])
    }

    #[test]
    fn page_ids_are_per_site_and_pages_are_checked() {
        let s = secrets(b"service secret");
        let (a, b) = (
            SiteId::parse("a").expect("site"),
            SiteId::parse("b").expect("site"),
        );
        let id_a = id(&s, &a, "/docs/intro").expect("id");
        assert!(is_page_id(&id_a));
        assert_eq!(id_a, id(&s, &a, "/docs/intro").expect("id"));
        assert_ne!(id_a, id(&s, &b, "/docs/intro").expect("id"));
        assert_ne!(id_a, id(&s, &a, "/docs/other").expect("id"));
        for bad in ["", "/a b", "/é", &"x".repeat(MAX_PAGE_LEN + 1)] {
            assert_eq!(id(&s, &a, bad).map_err(|e| e.status()), Err(400), "{bad:?}");
            assert_eq!(check(bad).map_err(|e| e.status()), Err(400), "{bad:?}");
        }
        assert!(id(&s, &a, &"x".repeat(MAX_PAGE_LEN)).is_ok());
        assert!(!is_page_id("/docs/intro"));
    }

    #[test]
    fn page_ids_cannot_be_matched_without_the_service_secret() {
        use sha2::{Digest, Sha256};
        let a = SiteId::parse("a").expect("site");
        let id_a = id(&secrets(b"service secret"), &a, "/docs/intro").expect("id");
        // Not the bare hash a dictionary of paths would find,
        let bare = Sha256::new()
            .chain_update(b"a")
            .chain_update([0u8])
            .chain_update(b"/docs/intro")
            .finalize();
        let bare = hex_prefix(&bare, 8);
        assert_ne!(id_a, bare);
        // and another secret gives another id.
        assert_ne!(id_a, id(&secrets(b"other"), &a, "/docs/intro").expect("id"));
    }
}
