//! `liveuser configure`: finishes a deploy, safely again and again (it changes only what is
//! not right yet, and never replaces a secret unless asked):
//!
//! 1. checks that Fanout is on for the service (the first publish asks for it; an account
//!    without Fanout, a trial one say, cannot have it, and nothing here works without it);
//! 2. points the `self` backend, which Fanout's calls come back through, at the service's own
//!    domain (its `*.edgecompute.app` name unless `--self-domain` says otherwise: a custom
//!    domain without a certificate yet would break Fanout's calls), port 443 with TLS, on a new
//!    version it activates;
//! 3. stores the secrets `fanout_publish_token` and `admin_token`, from files, a hidden
//!    prompt, or (the admin token) made at random into a file;
//! 4. makes the SSE session key, or rotates it (`--rotate-session-key`);
//! 5. brings the config store's items to what `fastly.toml` `[setup]` says (a publish applies
//!    `[setup]` only when it creates the service: a later edit would otherwise do nothing).
//!
//! Secrets are never printed and never taken on the command line.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use super::{manifest_path, random_bytes, say, service_id, store_id, Api, Body};
use super::{ADMIN_TOKEN, CONFIG_STORE, FANOUT_BACKEND, PUBLISH_TOKEN, SECRET_STORE};
use super::{SESSION_KEY_ITEM, SESSION_KEY_SLOTS};

/// What `configure` was asked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub publish_token_file: Option<String>,
    pub admin_token_file: Option<String>,
    pub generate_admin_token: Option<String>,
    pub replace: bool,
    pub rotate_session_key: bool,
    pub self_domain: Option<String>,
}

pub fn run(options: &Options) -> Result<(), String> {
    let api = Api::from_environment()?;
    let sid = service_id()?;
    check_fanout(&api, &sid)?;
    let domain = fix_fanout_backend(&api, &sid, options.self_domain.as_deref())?;
    store_secrets(&api, &sid, options)?;
    store_session_key(&api, options.rotate_session_key)?;
    sync_config_items(&api)?;
    say(&format!(
        "next: register your sites (the service refuses the others): LIVEUSER_SERVICE=https://{domain} LIVEUSER_ADMIN_TOKEN=<admin token> scripts/liveuser sites add <site> --origin https://<your site>"
    ));
    say("done. Logs: create a log endpoint named liveuser_log (fastly logging <provider> create --name liveuser_log --version latest --autoclone), then activate");
    Ok(())
}

fn check_fanout(api: &Api, sid: &str) -> Result<(), String> {
    let path = format!("/enabled-products/v1/fanout/services/{sid}");
    // (The API answers a product that is not enabled with a 4xx: any refusal means "not yet".)
    if matches!(api.call("GET", &path, Body::None, true), Ok(Some(_))) {
        say("Fanout is enabled on the service");
        return Ok(());
    }
    api.call("PUT", &path, Body::None, false).map_err(|e| {
        format!("Fanout is not enabled on service {sid} and could not be ({e}). LiveUser needs Fanout: it must be available on the account (trial accounts do not have it; ask Fastly to enable it), then run this again")
    })?;
    say("Fanout enabled on the service");
    Ok(())
}

fn active_version(api: &Api, sid: &str) -> Result<u64, String> {
    let details = api.must("GET", &format!("/service/{sid}/details"), Body::None)?;
    if let Some(n) = details["active_version"]["number"].as_u64() {
        return Ok(n);
    }
    details["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["active"].as_bool() == Some(true))
        .filter_map(|v| v["number"].as_u64())
        .max()
        .ok_or_else(|| format!("service {sid} has no active version yet: publish first"))
}

/// The domain `self` should name: the one asked for, else the service's
/// `*.edgecompute.app` name, else its first domain.
fn own_domain(api: &Api, sid: &str, version: u64, asked: Option<&str>) -> Result<String, String> {
    let list = api.must(
        "GET",
        &format!("/service/{sid}/version/{version}/domain"),
        Body::None,
    )?;
    let names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str())
        .filter(|d| !d.starts_with("*."))
        .map(String::from)
        .collect();
    if let Some(asked) = asked {
        return if names.iter().any(|n| n == asked) {
            Ok(asked.to_string())
        } else {
            Err(format!(
                "--self-domain {asked} is not a domain of service {sid} (it has: {})",
                names.join(", ")
            ))
        };
    }
    names
        .iter()
        .find(|n| n.ends_with(".edgecompute.app"))
        .or(names.first())
        .cloned()
        .ok_or_else(|| format!("service {sid} version {version} has no domain"))
}

fn fix_fanout_backend(api: &Api, sid: &str, asked: Option<&str>) -> Result<String, String> {
    let version = active_version(api, sid)?;
    let domain = own_domain(api, sid, version, asked)?;
    let wanted: [(&str, &str); 6] = [
        ("address", &domain),
        ("port", "443"),
        ("override_host", &domain),
        ("ssl_cert_hostname", &domain),
        ("ssl_sni_hostname", &domain),
        ("use_ssl", "1"),
    ];
    let path = format!("/service/{sid}/version/{version}/backend/{FANOUT_BACKEND}");
    let current = api.call("GET", &path, Body::None, true)?.ok_or_else(|| {
        format!("service {sid} has no backend named {FANOUT_BACKEND:?} (was it published from this project?)")
    })?;
    let have = |field: &str| -> String {
        match (field, &current[field]) {
            ("use_ssl", v) => {
                if matches!(v, Value::Bool(true)) || v == "1" || v == 1 || v == "true" {
                    "1"
                } else {
                    "0"
                }
                .into()
            }
            (_, Value::String(s)) => s.clone(),
            (_, Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    if wanted.iter().all(|(k, v)| have(k) == *v) {
        say(&format!(
            "backend {FANOUT_BACKEND} already points at {domain}:443 (TLS)"
        ));
        return Ok(domain);
    }
    let clone = api.must(
        "PUT",
        &format!("/service/{sid}/version/{version}/clone"),
        Body::None,
    )?;
    let new = clone["number"]
        .as_u64()
        .ok_or("the API cloned no version")?;
    api.must(
        "PUT",
        &format!("/service/{sid}/version/{new}/backend/{FANOUT_BACKEND}"),
        Body::Form(&wanted),
    )?;
    api.must(
        "PUT",
        &format!("/service/{sid}/version/{new}/activate"),
        Body::None,
    )?;
    say(&format!(
        "backend {FANOUT_BACKEND} now points at {domain}:443 (TLS); version {new} activated"
    ));
    Ok(domain)
}

fn secret_store(api: &Api) -> Result<String, String> {
    store_id(api, "secret", SECRET_STORE)?.ok_or_else(|| {
        format!("no secret store named {SECRET_STORE}: the first publish creates it (fastly.toml [setup])")
    })
}

fn config_store(api: &Api) -> Result<String, String> {
    store_id(api, "config", CONFIG_STORE)?.ok_or_else(|| {
        format!("no config store named {CONFIG_STORE}: the first publish creates it (fastly.toml [setup])")
    })
}

/// A secret's value: the first line of `file`, else typed at a hidden prompt (a terminal
/// only). `None`: not given (and not required).
fn read_value(
    name: &str,
    file: Option<&str>,
    required: bool,
    flag: &str,
) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the file for {name}: {e}"))?;
        let value = text.lines().next().unwrap_or_default().trim().to_string();
        if value.is_empty() {
            return Err(format!("the file for {name} is empty"));
        }
        return Ok(Some(value));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let hint = if required {
            ""
        } else {
            " (leave empty to leave it unset)"
        };
        let value = rpassword::prompt_password(format!("liveuser: {name}{hint}: "))
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        let value = value.trim().to_string();
        return match (value.is_empty(), required) {
            (false, _) => Ok(Some(value)),
            (true, false) => Ok(None),
            (true, true) => Err(format!("{name} is required")),
        };
    }
    if required {
        return Err(format!(
            "{name} is not set: give {flag} FILE, or run in a terminal to type it"
        ));
    }
    Ok(None)
}

fn generated_admin_token(path: &str) -> Result<String, String> {
    let token = URL_SAFE_NO_PAD.encode(random_bytes()?);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    say(&format!(
        "a random {ADMIN_TOKEN} was written to {path} (mode 600)"
    ));
    Ok(token)
}

fn put_secret(
    api: &Api,
    store: &str,
    name: &str,
    value: &[u8],
    exists: bool,
) -> Result<(), String> {
    let body = json!({"name": name, "secret": STANDARD.encode(value)});
    let method = if exists { "PUT" } else { "POST" };
    api.must(
        method,
        &format!("/resources/stores/secret/{store}/secrets"),
        Body::Json(&body),
    )?;
    Ok(())
}

fn secret_exists(api: &Api, store: &str, name: &str) -> Result<bool, String> {
    Ok(api
        .call(
            "GET",
            &format!("/resources/stores/secret/{store}/secrets/{name}"),
            Body::None,
            true,
        )?
        .is_some())
}

fn store_secrets(api: &Api, sid: &str, options: &Options) -> Result<(), String> {
    let store = secret_store(api)?;
    // The publish token can be made only now that the service exists: name it exactly.
    if !secret_exists(api, &store, PUBLISH_TOKEN)? || options.replace {
        let exists = secret_exists(api, &store, PUBLISH_TOKEN)?;
        let value = read_value(PUBLISH_TOKEN, options.publish_token_file.as_deref(), true, "--publish-token-file")
            .map_err(|e| format!("{e}. The {PUBLISH_TOKEN} is an automation token with the purge_select scope, limited to service {sid} (manage.fastly.com: Account, API tokens, Automation tokens); put it in a file and run: scripts/deploy --publish-token-file FILE"))?;
        if let Some(value) = value {
            put_secret(api, &store, PUBLISH_TOKEN, value.as_bytes(), exists)?;
            say(&format!("secret {PUBLISH_TOKEN} stored"));
        }
    } else {
        say(&format!(
            "secret {PUBLISH_TOKEN} is already set (--replace to change it)"
        ));
    }
    let exists = secret_exists(api, &store, ADMIN_TOKEN)?;
    if exists && !options.replace {
        say(&format!(
            "secret {ADMIN_TOKEN} is already set (--replace to change it)"
        ));
        return Ok(());
    }
    let value = match &options.generate_admin_token {
        Some(path) => Some(generated_admin_token(path)?),
        None => read_value(
            ADMIN_TOKEN,
            options.admin_token_file.as_deref(),
            false,
            "--admin-token-file",
        )?,
    };
    match value {
        Some(value) => {
            put_secret(api, &store, ADMIN_TOKEN, value.as_bytes(), exists)?;
            say(&format!("secret {ADMIN_TOKEN} stored"));
        }
        None => say(&format!("secret {ADMIN_TOKEN} left unset: the admin endpoints (and scripts/liveuser sites) answer 403 until it is set")),
    }
    Ok(())
}

/// Makes the first session key, or rotates: the slot not signing gets a fresh key, then is
/// named (a POP that sees the new name before the new secret keeps signing with the old).
fn store_session_key(api: &Api, rotate: bool) -> Result<(), String> {
    let secrets = secret_store(api)?;
    let config = config_store(api)?;
    let item = format!("/resources/stores/config/{config}/item/{SESSION_KEY_ITEM}");
    let named = api
        .call("GET", &item, Body::None, true)?
        .and_then(|v| v["item_value"].as_str().map(|s| s.trim().to_string()))
        .unwrap_or_default();
    let mut present = Vec::new();
    for (slot, name) in SESSION_KEY_SLOTS {
        present.push((slot, name, secret_exists(api, &secrets, name)?));
    }
    let named_set = present.iter().any(|(slot, _, set)| *slot == named && *set);
    if named_set && !rotate {
        say(&format!(
            "session key {named} signs SSE sessions (--rotate-session-key to rotate)"
        ));
        return Ok(());
    }
    // A rotation writes the slot not signing; the first key goes into slot a.
    let slot = if named_set && named == "a" { "b" } else { "a" };
    let (_, name, exists) = present
        .iter()
        .find(|(s, _, _)| *s == slot)
        .copied()
        .ok_or("no such session key slot")?;
    put_secret(api, &secrets, name, &random_bytes()?, exists)?;
    api.must("PUT", &item, Body::Form(&[("item_value", slot)]))?;
    if named_set {
        say(&format!("session key rotated: {slot} signs now; sessions signed under {named} stay valid until the next rotation"));
    } else {
        say(&format!("session key {slot} made: it signs SSE sessions"));
    }
    Ok(())
}

/// The config items `fastly.toml` sets up: `[setup.config_stores.liveuser_config.items.NAME]
/// value = "…"`.
pub fn setup_items(manifest: &str) -> Result<Vec<(String, String)>, String> {
    let doc: toml_edit::DocumentMut = manifest
        .parse()
        .map_err(|e| format!("fastly.toml is not TOML: {e}"))?;
    let Some(items) = doc
        .get("setup")
        .and_then(|s| s.get("config_stores"))
        .and_then(|s| s.get(CONFIG_STORE))
        .and_then(|s| s.get("items"))
        .and_then(|i| i.as_table_like())
    else {
        return Ok(Vec::new());
    };
    Ok(items
        .iter()
        .filter_map(|(key, item)| {
            let value = item.get("value")?.as_str()?;
            Some((key.to_string(), value.to_string()))
        })
        .collect())
}

fn sync_config_items(api: &Api) -> Result<(), String> {
    let path = manifest_path()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let store = config_store(api)?;
    let mut changed = 0;
    for (key, value) in setup_items(&text)? {
        let item = format!("/resources/stores/config/{store}/item/{key}");
        let current = api
            .call("GET", &item, Body::None, true)?
            .and_then(|v| v["item_value"].as_str().map(String::from));
        if current.as_deref() != Some(value.as_str()) {
            api.must("PUT", &item, Body::Form(&[("item_value", &value)]))?;
            say(&format!("config item {key} = {value:?} (from fastly.toml)"));
            changed += 1;
        }
    }
    if changed == 0 {
        say("config items are as fastly.toml sets them up");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_projects_manifest_sets_up_its_config_items() {
        let items = super::setup_items(include_str!("../../../fastly.toml")).expect("items");
        assert!(items.contains(&("heartbeat_interval_secs".to_string(), "30".to_string())));
        assert!(items.contains(&("broadcast_interval_ms".to_string(), "500".to_string())));
    }
}
