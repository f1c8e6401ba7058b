//! A registered site's settings, as the owner gives them and the registry stores them: which
//! page origins may connect (`origins`), the privacy floor (`minCount`), and the page prefixes
//! it counts pages under (`pages`). Every field is optional; each is checked here, so the
//! store only ever holds entries the service can use.

use serde::{Deserialize, Serialize};

/// The most origins one site may list.
pub const MAX_ORIGINS: usize = 20;
/// The most page prefixes one site may list.
pub const MAX_PAGES: usize = 50;
/// The longest origin or page prefix.
const MAX_ITEM: usize = 200;
/// The most a privacy floor may be.
pub const MAX_MIN_COUNT: u64 = 1_000_000;
/// The largest entry body taken (well above the largest valid entry).
pub const MAX_BODY: usize = 16 * 1024;

/// A site's settings. `None`: not set (any origin, no floor, every page counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SiteEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<Vec<String>>,
}

/// Why an entry was refused: what to fix, for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError(pub String);

impl SiteEntry {
    /// An owner's entry (JSON), checked and normalized: origins lowercased, without a trailing
    /// slash; empty lists are no list.
    pub fn from_json(body: &[u8]) -> Result<SiteEntry, EntryError> {
        if body.len() > MAX_BODY {
            return Err(EntryError(format!("the body is over {MAX_BODY} bytes")));
        }
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            body
        };
        let given: SiteEntry = serde_json::from_slice(body).map_err(|e| {
            EntryError(format!(
                "the body must be {{\"origins\": [\"https://…\"], \"minCount\": N, \"pages\": [\"/…\"]}} (each optional): {e}"
            ))
        })?;
        given.checked()
    }

    /// An entry read back from the store (`None`: not one this version can use).
    pub fn decode(bytes: &[u8]) -> Option<SiteEntry> {
        serde_json::from_slice::<SiteEntry>(bytes)
            .ok()?
            .checked()
            .ok()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    fn checked(self) -> Result<SiteEntry, EntryError> {
        let origins = match self.origins {
            Some(list) if list.len() > MAX_ORIGINS => {
                return Err(EntryError(format!("at most {MAX_ORIGINS} origins")))
            }
            Some(list) => {
                let list = list
                    .iter()
                    .map(|o| origin(o))
                    .collect::<Result<Vec<_>, _>>()?;
                (!list.is_empty()).then_some(list)
            }
            None => None,
        };
        if let Some(n) = self.min_count {
            if !(2..=MAX_MIN_COUNT).contains(&n) {
                return Err(EntryError(format!(
                    "minCount must be a whole number from 2 to {MAX_MIN_COUNT} (got {n})"
                )));
            }
        }
        let pages = match self.pages {
            Some(list) if list.len() > MAX_PAGES => {
                return Err(EntryError(format!("at most {MAX_PAGES} page prefixes")))
            }
            Some(list) => {
                for p in &list {
                    page_prefix(p)?;
                }
                (!list.is_empty()).then_some(list)
            }
            None => None,
        };
        Ok(SiteEntry {
            origins,
            min_count: self.min_count,
            pages,
        })
    }
}

/// A page origin as browsers send it (`https://example.com`, `http://localhost:8080`),
/// normalized; anything else (a path, a query, another scheme) is refused.
pub fn origin(text: &str) -> Result<String, EntryError> {
    let normalized = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let bad = || {
        EntryError(format!(
            "{text:?} is not an origin: scheme://host[:port], http or https, nothing after"
        ))
    };
    let rest = normalized
        .strip_prefix("https://")
        .or_else(|| normalized.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    if normalized.len() > MAX_ITEM || !host_ok || !port_ok {
        return Err(bad());
    }
    Ok(normalized)
}

/// A page prefix: starts with `/`, visible ASCII (as the widget sends page names).
fn page_prefix(text: &str) -> Result<(), EntryError> {
    let ok = text.starts_with('/')
        && text.len() <= MAX_ITEM
        && text.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(EntryError(format!(
            "{text:?} is not a page prefix: it starts with / and is visible ASCII, at most {MAX_ITEM} characters"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_and_normalized() {
        let entry = SiteEntry::from_json(
            br#"{"origins": ["https://Shop.example/", "http://localhost:8080"], "minCount": 5, "pages": ["/docs/"]}"#,
        )
        .expect("valid");
        assert_eq!(
            entry,
            SiteEntry {
                origins: Some(vec![
                    "https://shop.example".into(),
                    "http://localhost:8080".into()
                ]),
                min_count: Some(5),
                pages: Some(vec!["/docs/".into()]),
            }
        );
        assert_eq!(SiteEntry::decode(entry.encode().as_bytes()), Some(entry));
        assert_eq!(SiteEntry::from_json(b""), Ok(SiteEntry::default()));
        assert_eq!(
            SiteEntry::from_json(br#"{"origins": []}"#),
            Ok(SiteEntry::default())
        );
    }

    #[test]
    fn bad_entries_say_what_to_fix() {
        for (body, says) in [
            (&br#"{"minCount": 1}"#[..], "minCount must be"),
            (br#"{"minCount": "five"}"#, "the body must be"),
            (br#"{"minCount": 2000000}"#, "minCount must be"),
            (br#"{"origins": ["example.com"]}"#, "is not an origin"),
            (
                br#"{"origins": ["https://a.example/path"]}"#,
                "is not an origin",
            ),
            (br#"{"origins": ["ftp://a.example"]}"#, "is not an origin"),
            (
                br#"{"origins": ["https://a.example:99999"]}"#,
                "is not an origin",
            ),
            (br#"{"origins": ["https://"]}"#, "is not an origin"),
            (br#"{"pages": ["docs"]}"#, "is not a page prefix"),
            (br#"{"pages": ["/a b"]}"#, "is not a page prefix"),
            (br#"{"colour": "red"}"#, "unknown field"),
            (b"[", "the body must be"),
        ] {
            let err = SiteEntry::from_json(body).expect_err("refused");
            assert!(
                err.0.contains(says),
                "{}: {}",
                String::from_utf8_lossy(body),
                err.0
            );
        }
        let many = format!(
            r#"{{"origins": [{}]}}"#,
            ["\"https://a.example\""; MAX_ORIGINS + 1].join(",")
        );
        assert!(SiteEntry::from_json(many.as_bytes()).is_err());
        assert!(SiteEntry::from_json(&vec![b' '; MAX_BODY + 1]).is_err());
    }
}
