//! The site registry and per-site settings, read on demand from the config store: which sites
//! are served (`sites`), which page origins may connect to one (`origins.<siteId>`), its
//! privacy floor (`min_count.<siteId>`), and the page prefixes it counts (`pages.<siteId>`). Every endpoint checks a site here before anything is
//! stored or subscribed.

use crate::platform::config::{ConfigSource, ConfigUnreadable};
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// Whether the site may be served: when the `sites` setting lists site ids (comma-separated),
/// only those; when it is absent, every valid site id.
pub fn site_is_known(source: &dyn ConfigSource, site: &SiteId) -> bool {
    let Some(list) = source.get("sites") else {
        return true;
    };
    list.split(',').any(|s| s.trim() == site.as_str())
}

/// The most a privacy floor may be.
const MAX_MIN_COUNT: u64 = 1_000_000;

/// The per-site privacy floor, from the `min_count.<siteId>` setting (see `floor`): a whole
/// number from 2 to 1,000,000. Anything else, or no setting, means no floor; a store that
/// cannot be read says so (the floor keeps its last value then).
pub fn min_count(
    source: &dyn ConfigSource,
    site: &SiteId,
) -> Result<Option<u64>, ConfigUnreadable> {
    let Some(raw) = source.read(&format!("min_count.{site}"))? else {
        return Ok(None);
    };
    Ok(raw
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (2..=MAX_MIN_COUNT).contains(n)))
}

/// The per-site allow-list of page origins, from the `origins.<siteId>` setting: a
/// comma-separated list such as `https://example.com, https://www.example.com`. `None` means
/// the site takes connections from any page.
pub fn allowed_origins(source: &dyn ConfigSource, site: &SiteId) -> Option<Vec<String>> {
    let raw = source.get(&format!("origins.{site}"))?;
    let list: Vec<String> = raw
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect();
    Some(list)
}

/// The page prefixes a site counts pages under, from the `pages.<siteId>` setting: a
/// comma-separated list such as `/docs/, /blog/`. `None` (no setting, or an empty list) counts
/// every page.
pub fn page_prefixes(source: &dyn ConfigSource, site: &SiteId) -> Option<Vec<String>> {
    let raw = source.get(&format!("pages.{site}"))?;
    let list: Vec<String> = raw
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Refuses a site the registry (config `sites`) does not list; without a registry every
/// valid site id is served, as the original does.
pub fn check_site(settings: &dyn ConfigSource, site: &SiteId) -> Result<(), HttpError> {
    if site_is_known(settings, site) {
        Ok(())
    } else {
        Err(HttpError::UnknownSite)
    }
}

/// Refuses a page origin that the site's allow-list (config `origins.<siteId>`) does not name.
/// Sites without a list take every origin, as the original does.
pub fn check_origin(
    settings: &dyn ConfigSource,
    site: &SiteId,
    origin: Option<&str>,
) -> Result<(), HttpError> {
    let Some(allowed) = allowed_origins(settings, site) else {
        return Ok(());
    };
    let origin = origin.map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase());
    match origin {
        Some(o) if allowed.contains(&o) => Ok(()),
        Some(o) => Err(HttpError::Forbidden(format!(
            "origin {o} may not connect to site {site}"
        ))),
        None => Err(HttpError::Forbidden(format!(
            "site {site} only takes connections from its own pages (no Origin header)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config::settings_from as source;

    #[test]
    fn allowed_origins_are_normalized_lists() {
        let site = SiteId::parse("shop").expect("site");
        assert_eq!(allowed_origins(&source(&[]), &site), None);
        let src = source(&[(
            "origins.shop",
            "https://Shop.example/, https://www.shop.example ,",
        )]);
        assert_eq!(
            allowed_origins(&src, &site),
            Some(vec![
                "https://shop.example".to_string(),
                "https://www.shop.example".to_string()
            ])
        );
    }
}
