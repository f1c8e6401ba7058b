//! The deployed service's account side, over Fastly's API: finishing a deploy
//! ([`configure`]) and removing it ([`teardown`]). What `fastly compute publish` cannot do by
//! itself, with the same token the Fastly CLI uses.
//!
//! The token: `$FASTLY_API_TOKEN`, else the Fastly CLI's own stored token (`fastly auth
//! token`). The API: `$FASTLY_API_ENDPOINT` (default https://api.fastly.com). The service:
//! `service_id` in the project's `fastly.toml`, which the first publish wrote.

pub mod configure;
pub mod teardown;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The store, backend and secret names of fastly.toml (src/platform/fastly_toml.rs owns them
/// for the service; these are the same).
pub const KV_STORE: &str = "liveuser";
pub const CONFIG_STORE: &str = "liveuser_config";
pub const SECRET_STORE: &str = "liveuser_secrets";
pub const FANOUT_BACKEND: &str = "self";
pub const ADMIN_TOKEN: &str = "admin_token";
pub const PUBLISH_TOKEN: &str = "fanout_publish_token";
pub const SESSION_KEY_SLOTS: [(&str, &str); 2] = [("a", "session_key_a"), ("b", "session_key_b")];
pub const SESSION_KEY_ITEM: &str = "session_key";

/// Prints one step's outcome.
pub fn say(message: &str) {
    println!("liveuser: {message}");
}

/// A request body.
pub enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a Value),
}

/// Fastly's API with a token. Errors carry what the API said (never the request: it may
/// carry a secret).
pub struct Api {
    base: String,
    token: String,
}

impl Api {
    /// The API and the token, from the environment or the Fastly CLI.
    pub fn from_environment() -> Result<Api, String> {
        let base = std::env::var("FASTLY_API_ENDPOINT")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "https://api.fastly.com".into());
        let token = match std::env::var("FASTLY_API_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            Some(token) => token.trim().to_string(),
            None => cli_token()?,
        };
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// `method path`: the answer's JSON (`{}` for an empty body), `None` for a 404 when
    /// `missing_ok`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Body,
        missing_ok: bool,
    ) -> Result<Option<Value>, String> {
        let request = ureq::request(method, &format!("{}{path}", self.base))
            .set("Fastly-Key", &self.token)
            .set("Accept", "application/json")
            .timeout(std::time::Duration::from_secs(60));
        let result = match body {
            Body::None => request.call(),
            Body::Form(pairs) => request.send_form(pairs),
            Body::Json(value) => request
                .set("Content-Type", "application/json")
                .send_string(&value.to_string()),
        };
        match result {
            Ok(resp) => {
                let text = resp.into_string().unwrap_or_default();
                if text.trim().is_empty() {
                    return Ok(Some(Value::Object(Default::default())));
                }
                serde_json::from_str(&text).map(Some).map_err(|_| {
                    format!("{method} {path}: the API answered something that is not JSON")
                })
            }
            Err(ureq::Error::Status(404, _)) if missing_ok => Ok(None),
            Err(ureq::Error::Status(status, resp)) => {
                let detail: String = resp
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                Err(format!("{method} {path} failed: HTTP {status} {detail}"))
            }
            Err(e) => Err(format!("cannot reach {}: {e}", self.base)),
        }
    }

    /// [`Api::call`] where a 404 is an error too.
    pub fn must(&self, method: &str, path: &str, body: Body) -> Result<Value, String> {
        self.call(method, path, body, false)
            .map(|v| v.unwrap_or(Value::Null))
    }
}

/// The Fastly CLI: `$FASTLY_CLI`, else `fastly` on the PATH.
fn fastly_cli() -> PathBuf {
    std::env::var_os("FASTLY_CLI")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fastly"))
}

/// The token the Fastly CLI has stored (`fastly auth login`).
fn cli_token() -> Result<String, String> {
    let missing =
        "no Fastly API token: set FASTLY_API_TOKEN, or store one with `fastly auth login`";
    let out = Command::new(fastly_cli())
        .args(["auth", "token"])
        .output()
        .map_err(|_| missing.to_string())?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(missing.into());
    }
    Ok(token)
}

/// The project's `fastly.toml`: the nearest one up from here.
pub fn manifest_path() -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    cwd.ancestors()
        .map(|d| d.join("fastly.toml"))
        .find(|p| p.is_file())
        .ok_or_else(|| "no fastly.toml here or above: run this in the project".into())
}

/// The service id the first publish wrote into `fastly.toml`.
pub fn service_id() -> Result<String, String> {
    let path = manifest_path()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{} is not TOML: {e}", path.display()))?;
    let sid = doc
        .get("service_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if sid.is_empty() {
        return Err("fastly.toml has no service_id yet: publish first (scripts/deploy)".into());
    }
    Ok(sid)
}

/// The id of the store of `kind` (`kv`, `config`, `secret`) named `name`, if there is one.
pub fn store_id(api: &Api, kind: &str, name: &str) -> Result<Option<String>, String> {
    let path = match kind {
        "secret" => format!("/resources/stores/secret?name={name}"),
        _ => format!("/resources/stores/{kind}"),
    };
    let found = api.must("GET", &path, Body::None)?;
    let list = match &found {
        Value::Array(items) => items.clone(),
        other => other["data"].as_array().cloned().unwrap_or_default(),
    };
    Ok(list
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .and_then(|s| s["id"].as_str())
        .map(String::from))
}

/// 32 random bytes from the operating system.
pub fn random_bytes() -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes)
}
