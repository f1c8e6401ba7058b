//! Site ids: which site a connection or API call is about.
//!
//! A site id names a Fanout channel and a KV key prefix, so it is checked before either is
//! touched: 1 to 64 characters of `A-Z a-z 0-9 . _ -`. That alphabet contains none of the
//! characters the KV store forbids in keys, and `.`-only ids are refused so no key segment
//! can be `.` or `..`.

use std::fmt;

/// The site used when a request names none (as the original LiveUser does).
pub const DEFAULT_SITE: &str = "default-site";
/// The longest site id accepted.
pub const MAX_LEN: usize = 64;

/// A validated site id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(String);

/// Why a site id was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteIdError {
    Empty,
    TooLong { len: usize },
    BadCharacter { character: char },
    DotsOnly,
}

impl fmt::Display for SiteIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteIdError::Empty => write!(f, "siteId is empty"),
            SiteIdError::TooLong { len } => {
                write!(
                    f,
                    "siteId has {len} characters; at most {MAX_LEN} are allowed"
                )
            }
            SiteIdError::BadCharacter { character } => write!(
                f,
                "siteId contains {character:?}; only A-Z a-z 0-9 . _ - are allowed"
            ),
            SiteIdError::DotsOnly => write!(f, "siteId cannot consist of dots only"),
        }
    }
}

impl std::error::Error for SiteIdError {}

impl SiteId {
    /// Checks `raw` and wraps it.
    pub fn parse(raw: &str) -> Result<SiteId, SiteIdError> {
        if raw.is_empty() {
            return Err(SiteIdError::Empty);
        }
        let len = raw.chars().count();
        if len > MAX_LEN {
            return Err(SiteIdError::TooLong { len });
        }
        if let Some(character) = raw.chars().find(|c| !is_allowed(*c)) {
            return Err(SiteIdError::BadCharacter { character });
        }
        if raw.chars().all(|c| c == '.') {
            return Err(SiteIdError::DotsOnly);
        }
        Ok(SiteId(raw.to_string()))
    }

    /// The site id used when none is given.
    pub fn default_site() -> SiteId {
        SiteId(DEFAULT_SITE.to_string())
    }

    /// Reads the site from an optional query value: absent means the default site, present
    /// (even empty) must be valid.
    pub fn from_query(value: Option<&str>) -> Result<SiteId, SiteIdError> {
        match value {
            None => Ok(SiteId::default_site()),
            Some(raw) => SiteId::parse(raw),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where every KV key that is listed for this site starts: its presence (`p/`) and its
    /// visits not folded yet (`v/`), each listed under its own prefix.
    pub fn listing_prefix(&self) -> String {
        format!("site/{}/", self.0)
    }

    /// The Fanout channel of this site's connections that show the count only.
    /// (`:` cannot appear in a site id, so no two sites' channels can collide.)
    pub fn channel(&self) -> String {
        format!("site:{}", self.0)
    }

    /// The Fanout channel of this site's connections that also show the total visits.
    pub fn totals_channel(&self) -> String {
        format!("site-totals:{}", self.0)
    }

    /// The Fanout channel of this site's owner's dashboards (no reader subscribes to it).
    pub fn dashboard_channel(&self) -> String {
        format!("{DASHBOARD_CHANNEL_PREFIX}{}", self.0)
    }
}

/// What every dashboard channel starts with.
pub const DASHBOARD_CHANNEL_PREFIX: &str = "site-dashboard:";

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in [
            "a",
            "default-site",
            "My_Site.v2",
            "x".repeat(64).as_str(),
            "a..b",
            ".a",
        ] {
            assert_eq!(SiteId::parse(ok).map(|s| s.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(SiteId::parse(""), Err(SiteIdError::Empty));
        assert_eq!(
            SiteId::parse(&"x".repeat(65)),
            Err(SiteIdError::TooLong { len: 65 })
        );
        for (bad, c) in [
            ("a b", ' '),
            ("a/b", '/'),
            ("a#b", '#'),
            ("a;b", ';'),
            ("a?b", '?'),
            ("a|b", '|'),
            ("a^b", '^'),
            ("a\nb", '\n'),
            ("sité", 'é'),
            ("a\"b", '"'),
        ] {
            assert_eq!(
                SiteId::parse(bad),
                Err(SiteIdError::BadCharacter { character: c })
            );
        }
        assert_eq!(SiteId::parse("."), Err(SiteIdError::DotsOnly));
        assert_eq!(SiteId::parse(".."), Err(SiteIdError::DotsOnly));
    }

    #[test]
    fn absent_means_default_but_empty_is_an_error() {
        assert_eq!(SiteId::from_query(None), Ok(SiteId::default_site()));
        assert_eq!(SiteId::from_query(Some("")), Err(SiteIdError::Empty));
        assert_eq!(SiteId::default_site().as_str(), "default-site");
    }

    #[test]
    fn channels_are_namespaced_and_cannot_collide() {
        let a = SiteId::parse("a").expect("site");
        let dotted = SiteId::parse("a.totals").expect("site");
        assert_eq!(a.channel(), "site:a");
        assert_eq!(a.totals_channel(), "site-totals:a");
        let all = [
            a.channel(),
            a.totals_channel(),
            dotted.channel(),
            dotted.totals_channel(),
        ];
        let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
