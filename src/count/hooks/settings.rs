//! A site's webhooks as the admin API takes them: where each posts, its threshold and
//! hysteresis, its secret; checked before anything is stored (a URL that is not `https://`, a
//! threshold that is not a whole number: refused, saying which), and kept in one KV key a site,
//! `hooks/<siteId>` (apart from the site's registry entry, which it does not change).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::platform::config::WebhookHttp;
use crate::platform::kv::{KvError, KvStore, WriteMode};
use crate::platform::Services;
use crate::wire::site::SiteId;

/// The most hooks a site may have: each crossing's delivery is up to three backend requests
/// of the broadcast's execution, which has 32 in all; the count takes up to 16 (`census`: 8
/// shares, each asked twice at worst) and its publishes 2, leaving 14: 4 × 3 = 12 fit.
pub const MAX_HOOKS: usize = 4;
/// The largest threshold taken.
pub const MAX_THRESHOLD: u64 = 1_000_000_000;
/// The longest URL taken.
pub const MAX_URL_LEN: usize = 2_000;
/// How long a POP checks crossings against the hooks it read, before reading them again.
pub const FRESH_MS: u64 = 5_000;

/// One webhook, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub id: String,
    pub url: String,
    /// `online.above` when the count reaches this.
    pub above: u64,
    /// `online.below` when the count falls below `above - hysteresis`.
    pub hysteresis: u64,
    /// The signing secret: shown once, when the hook is added.
    pub secret: String,
}

/// A hook as the admin API is asked to add it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHook {
    pub url: String,
    pub above: u64,
    pub hysteresis: u64,
}

/// Why a hook was not taken: each its own code, and words that say what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookError {
    /// Not a JSON object of the known fields.
    Body(String),
    /// Not a URL this service can post to.
    Url(String),
    /// A URL that is not `https://` where only HTTPS is taken.
    NotHttps(String),
    /// `above` missing, not a whole number, or out of range.
    Threshold(String),
    /// `hysteresis` not a whole number, or not below the threshold.
    Hysteresis(String),
    /// The site has [`MAX_HOOKS`] already.
    TooMany,
}

impl HookError {
    /// The stable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            HookError::Body(_) => "invalid_hook",
            HookError::Url(_) => "invalid_hook_url",
            HookError::NotHttps(_) => "hook_url_not_https",
            HookError::Threshold(_) => "invalid_threshold",
            HookError::Hysteresis(_) => "invalid_hysteresis",
            HookError::TooMany => "too_many_hooks",
        }
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Body(m)
            | HookError::Url(m)
            | HookError::NotHttps(m)
            | HookError::Threshold(m)
            | HookError::Hysteresis(m) => write!(f, "{m}"),
            HookError::TooMany => write!(
                f,
                "a site has at most {MAX_HOOKS} webhooks; remove one first"
            ),
        }
    }
}

impl NewHook {
    /// Reads `{"url", "above", "hysteresis"?}`; `http` says whether plain HTTP to this machine
    /// is taken (the local stack) or only `https://` (production).
    pub fn from_json(body: &[u8], http: WebhookHttp) -> Result<NewHook, HookError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            HookError::Body(
                "the body must be a JSON object: {\"url\": \"https://…\", \"above\": N, \"hysteresis\": H}"
                    .into(),
            )
        })?;
        let Value::Object(fields) = value else {
            return Err(HookError::Body(
                "the body must be a JSON object: {\"url\", \"above\", \"hysteresis\"?}".into(),
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "url" | "above" | "hysteresis"))
        {
            return Err(HookError::Body(format!(
                "unknown field {unknown:?}: a hook takes url, above and hysteresis"
            )));
        }
        let url = match fields.get("url") {
            Some(Value::String(url)) => check_url(url, http)?,
            Some(other) => {
                return Err(HookError::Url(format!(
                    "url must be a string (got {other})"
                )))
            }
            None => return Err(HookError::Url("url is required".into())),
        };
        let above = match fields.get("above") {
            // A JSON whole number: not a string holding one, not a fraction, not negative.
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_THRESHOLD).contains(n))
                .ok_or_else(|| {
                    HookError::Threshold(format!(
                        "above must be a whole number from 1 to {MAX_THRESHOLD} (got {v})"
                    ))
                })?,
            None => return Err(HookError::Threshold("above is required".into())),
        };
        let hysteresis = match fields.get("hysteresis") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().filter(|h| *h < above).ok_or_else(|| {
                HookError::Hysteresis(format!(
                    "hysteresis must be a whole number from 0 to {} (below above = {above}; got {v})",
                    above - 1
                ))
            })?,
        };
        Ok(NewHook {
            url,
            above,
            hysteresis,
        })
    }
}

/// Whether `host` is this machine.
fn loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Whether `host` is an address no public receiver has (private, link-local, unspecified,
/// multicast): a deployed service does not post to its own network's insides.
fn internal(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
        }
        url::Host::Ipv6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
        }
    }
}

/// `raw` as the URL to post to: absolute, `https://` (or `http://` to this machine where the
/// config allows it), with a host (a public one, where only HTTPS is taken), without
/// credentials or a fragment.
fn check_url(raw: &str, http: WebhookHttp) -> Result<String, HookError> {
    if raw.len() > MAX_URL_LEN {
        return Err(HookError::Url(format!(
            "url is longer than {MAX_URL_LEN} characters"
        )));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| HookError::Url(format!("url {raw:?} is not an absolute URL ({e})")))?;
    let host = url
        .host()
        .ok_or_else(|| HookError::Url(format!("url {raw:?} has no host")))?;
    match url.scheme() {
        "https" => {}
        "http" if http == WebhookHttp::Loopback && loopback(&host) => {}
        "http" if http == WebhookHttp::Loopback => {
            return Err(HookError::NotHttps(format!(
                "url {raw:?} must be https:// (plain http:// is taken only to this machine here)"
            )))
        }
        _ => {
            return Err(HookError::NotHttps(format!(
                "url {raw:?} must be https:// (webhooks are sent over HTTPS only)"
            )))
        }
    }
    if http == WebhookHttp::Refuse && internal(&host) {
        return Err(HookError::Url(format!(
            "url {raw:?} names a private or loopback address; a webhook goes to a public host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HookError::Url(format!(
            "url {raw:?} carries a user name or password; put a token in its path or query instead"
        )));
    }
    if url.fragment().is_some() {
        return Err(HookError::Url(format!(
            "url {raw:?} has a #fragment, which is never sent"
        )));
    }
    Ok(url.to_string())
}

fn key(site: &SiteId) -> String {
    format!("hooks/{site}")
}

/// The site's hooks and the generation they were read at (`None`: it has none stored).
pub fn read(kv: &dyn KvStore, site: &SiteId) -> Result<(Vec<Hook>, Option<u64>), KvError> {
    Ok(match kv.lookup(&key(site))? {
        // A value this version cannot read holds no hook it could sign for.
        Some(e) => (
            serde_json::from_slice(&e.value).unwrap_or_default(),
            Some(e.generation),
        ),
        None => (Vec::new(), None),
    })
}

/// Makes `hooks` what this POP checks crossings against, at once.
fn remember(services: &Services, site: &SiteId, hooks: &[Hook]) {
    let bytes = serde_json::to_vec(hooks).unwrap_or_default();
    services.cache.set(&key(site), &bytes, FRESH_MS);
}

/// The hooks a broadcast checks: read at most once every [`FRESH_MS`] per POP (a site without
/// hooks costs a cache lookup); none while the store cannot be read.
pub fn for_broadcast(services: &Services, site: &SiteId) -> Result<Vec<Hook>, KvError> {
    if let Some(bytes) = services.cache.get(&key(site)) {
        return Ok(serde_json::from_slice(&bytes).unwrap_or_default());
    }
    let (hooks, _) = read(services.kv, site)?;
    remember(services, site, &hooks);
    Ok(hooks)
}

/// Why a hook could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    TooMany,
    Store(KvError),
}

/// How many times a write that lost to another admin write is tried again.
const WRITE_TRIES: usize = 3;

/// Writes `hooks` over the ones read at `generation`; `Ok(false)` if they changed meanwhile.
fn write(
    services: &Services,
    site: &SiteId,
    hooks: &[Hook],
    generation: Option<u64>,
) -> Result<bool, KvError> {
    let mode = generation.map_or(WriteMode::AddOnly, WriteMode::IfGeneration);
    let bytes = serde_json::to_vec(hooks).unwrap_or_default();
    match services.kv.insert(&key(site), &bytes, None, mode) {
        Ok(()) => {
            remember(services, site, hooks);
            Ok(true)
        }
        Err(KvError::PreconditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Adds a hook made from `new` with a fresh id and secret: the hook as stored.
pub fn add(services: &Services, site: &SiteId, new: &NewHook) -> Result<Hook, AddError> {
    for _ in 0..WRITE_TRIES {
        let (mut hooks, generation) = read(services.kv, site).map_err(AddError::Store)?;
        if hooks.len() >= MAX_HOOKS {
            return Err(AddError::TooMany);
        }
        let [a, _] = services.ids.random_u64s();
        let [s1, s2] = services.ids.random_u64s();
        let [s3, s4] = services.ids.random_u64s();
        let hook = Hook {
            id: format!("hk_{a:016x}"),
            url: new.url.clone(),
            above: new.above,
            hysteresis: new.hysteresis,
            secret: format!("whsec_{s1:016x}{s2:016x}{s3:016x}{s4:016x}"),
        };
        hooks.push(hook.clone());
        if write(services, site, &hooks, generation).map_err(AddError::Store)? {
            return Ok(hook);
        }
    }
    Err(AddError::Store(KvError::PreconditionFailed))
}

/// Removes the hook `id`: whether the site had it.
pub fn remove(services: &Services, site: &SiteId, id: &str) -> Result<bool, KvError> {
    for _ in 0..WRITE_TRIES {
        let (hooks, generation) = read(services.kv, site)?;
        if !hooks.iter().any(|h| h.id == id) {
            return Ok(false);
        }
        let kept: Vec<Hook> = hooks.into_iter().filter(|h| h.id != id).collect();
        if write(services, site, &kept, generation)? {
            return Ok(true);
        }
    }
    Err(KvError::PreconditionFailed)
}

/// Removes every hook of `site`: the ids it had.
pub fn remove_all(services: &Services, site: &SiteId) -> Result<Vec<String>, KvError> {
    let (hooks, _) = read(services.kv, site)?;
    if !hooks.is_empty() {
        services.kv.delete(&key(site))?;
    }
    remember(services, site, &[]);
    Ok(hooks.into_iter().map(|h| h.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::TestServices;

    fn parsed(body: &str, http: WebhookHttp) -> Result<NewHook, HookError> {
        NewHook::from_json(body.as_bytes(), http)
    }

    #[test]
    fn a_hook_takes_an_https_url_a_threshold_and_a_hysteresis() {
        assert_eq!(
            parsed(
                r#"{"url": "https://hooks.example/live?k=1", "above": 100, "hysteresis": 10}"#,
                WebhookHttp::Refuse
            ),
            Ok(NewHook {
                url: "https://hooks.example/live?k=1".into(),
                above: 100,
                hysteresis: 10
            })
        );
        let plain = parsed(
            r#"{"url": "http://127.0.0.1:9000/h", "above": 3}"#,
            WebhookHttp::Loopback,
        );
        assert_eq!(plain.map(|h| h.hysteresis), Ok(0));
    }

    #[test]
    fn bad_input_says_which_field_is_wrong() {
        use WebhookHttp::{Loopback, Refuse};
        for (body, http, code, says) in [
            ("nope", Refuse, "invalid_hook", "JSON object"),
            ("[1]", Refuse, "invalid_hook", "JSON object"),
            (
                r#"{"url": "https://a.example", "above": 1, "colour": 1}"#,
                Refuse,
                "invalid_hook",
                "unknown field \"colour\"",
            ),
            (
                r#"{"above": 5}"#,
                Refuse,
                "invalid_hook_url",
                "url is required",
            ),
            (
                r#"{"url": "hooks.example/x", "above": 5}"#,
                Refuse,
                "invalid_hook_url",
                "not an absolute URL",
            ),
            (
                r#"{"url": "http://hooks.example/x", "above": 5}"#,
                Refuse,
                "hook_url_not_https",
                "must be https://",
            ),
            (
                r#"{"url": "http://127.0.0.1:9/x", "above": 5}"#,
                Refuse,
                "hook_url_not_https",
                "must be https://",
            ),
            (
                r#"{"url": "http://hooks.example/x", "above": 5}"#,
                Loopback,
                "hook_url_not_https",
                "only to this machine",
            ),
            (
                r#"{"url": "ftp://hooks.example/x", "above": 5}"#,
                Loopback,
                "hook_url_not_https",
                "must be https://",
            ),
            (
                r#"{"url": "https://10.1.2.3/x", "above": 5}"#,
                Refuse,
                "invalid_hook_url",
                "private or loopback",
            ),
            (
                r#"{"url": "https://[fe80::1]/x", "above": 5}"#,
                Refuse,
                "invalid_hook_url",
                "private or loopback",
            ),
            (
                r#"{"url": "https://localhost:8443/x", "above": 5}"#,
                Refuse,
                "invalid_hook_url",
                "private or loopback",
            ),
            (
                r#"{"url": "https://u:p@hooks.example/x", "above": 5}"#,
                Refuse,
                "invalid_hook_url",
                "user name or password",
            ),
            (
                r#"{"url": "https://hooks.example/x", "above": "five"}"#,
                Refuse,
                "invalid_threshold",
                "whole number from 1",
            ),
            (
                r#"{"url": "https://hooks.example/x", "above": 2.5}"#,
                Refuse,
                "invalid_threshold",
                "whole number from 1",
            ),
            (
                r#"{"url": "https://hooks.example/x", "above": 0}"#,
                Refuse,
                "invalid_threshold",
                "whole number from 1",
            ),
            (
                r#"{"url": "https://hooks.example/x"}"#,
                Refuse,
                "invalid_threshold",
                "above is required",
            ),
            (
                r#"{"url": "https://hooks.example/x", "above": 5, "hysteresis": 5}"#,
                Refuse,
                "invalid_hysteresis",
                "from 0 to 4",
            ),
            (
                r#"{"url": "https://hooks.example/x", "above": 5, "hysteresis": -1}"#,
                Refuse,
                "invalid_hysteresis",
                "from 0 to 4",
            ),
        ] {
            let err = parsed(body, http).expect_err(body);
            assert_eq!(err.code(), code, "{body}");
            assert!(err.to_string().contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn hooks_are_added_with_their_own_id_and_secret_and_removed() {
        let t = TestServices::new();
        let site = SiteId::parse("shop").expect("site");
        let new = NewHook {
            url: "https://hooks.example/".into(),
            above: 3,
            hysteresis: 1,
        };
        let a = add(&t.services(), &site, &new).expect("added");
        let b = add(&t.services(), &site, &new).expect("added");
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("whsec_") && a.secret.len() == 6 + 64);
        assert_eq!(
            for_broadcast(&t.services(), &site),
            Ok(vec![a.clone(), b.clone()])
        );
        assert_eq!(remove(&t.services(), &site, &a.id), Ok(true));
        assert_eq!(remove(&t.services(), &site, &a.id), Ok(false));
        assert_eq!(read(&t.kv, &site).map(|r| r.0), Ok(vec![b]));
        for _ in 1..MAX_HOOKS {
            add(&t.services(), &site, &new).expect("room");
        }
        assert_eq!(add(&t.services(), &site, &new), Err(AddError::TooMany));
    }
}
