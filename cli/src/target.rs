//! Which service the command talks to, and with what admin token:
//!
//! - the service: `--service URL`, else `$LIVEUSER_SERVICE`, else the local stack
//!   (`fastly compute serve` listens on http://127.0.0.1:7676);
//! - the token: the first line of `--admin-token-file FILE`, else `$LIVEUSER_ADMIN_TOKEN`, else
//!   for the local stack the development token `fastly.toml` gives it. A token is never taken
//!   on the command line (it would land in shell history and the process list).

use crate::args::TargetArgs;

/// Where `fastly compute serve` listens.
pub const LOCAL_SERVICE: &str = "http://127.0.0.1:7676";

/// A service and the admin token it takes.
#[derive(Debug, PartialEq, Eq)]
pub struct Service {
    /// `scheme://host[:port]`, no trailing slash.
    pub url: String,
    pub token: String,
}

pub fn resolve(args: &TargetArgs) -> Result<Service, String> {
    let url = args
        .service
        .clone()
        .or_else(|| {
            std::env::var("LIVEUSER_SERVICE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| LOCAL_SERVICE.to_string());
    let url = url.trim().trim_end_matches('/').to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "the service must be an http(s) URL such as https://my-liveuser.edgecompute.app (got {url:?})"
        ));
    }
    let token = match &args.admin_token_file {
        Some(path) => first_line(path)?,
        None => match std::env::var("LIVEUSER_ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            Some(token) => token.trim().to_string(),
            None if is_local(&url) => local_token()?,
            None => {
                return Err(format!(
                    "no admin token for {url}: give --admin-token-file FILE or set LIVEUSER_ADMIN_TOKEN (the admin_token secret of the service)"
                ))
            }
        },
    };
    Ok(Service { url, token })
}

fn first_line(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the admin token file {path}: {e}"))?;
    let line = text.lines().next().unwrap_or_default().trim().to_string();
    if line.is_empty() {
        return Err(format!("the admin token file {path} is empty"));
    }
    Ok(line)
}

fn is_local(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or_default();
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| host == *h || host.starts_with(&format!("{h}:")))
}

/// The local stack's development admin token, from the nearest `fastly.toml` up from here.
fn local_token() -> Result<String, String> {
    let missing = || {
        "no admin token: give --admin-token-file FILE or set LIVEUSER_ADMIN_TOKEN (none found in a fastly.toml here or above)".to_string()
    };
    let cwd = std::env::current_dir().map_err(|_| missing())?;
    let manifest = cwd
        .ancestors()
        .map(|d| d.join("fastly.toml"))
        .find(|p| p.is_file())
        .ok_or_else(missing)?;
    let text = std::fs::read_to_string(&manifest).map_err(|_| missing())?;
    admin_token_in(&text).ok_or_else(missing)
}

/// `[local_server.secret_stores] liveuser_secrets = [{ key = "admin_token", data = "…" }]`.
fn admin_token_in(manifest: &str) -> Option<String> {
    let doc: toml_edit::DocumentMut = manifest.parse().ok()?;
    let entries = doc
        .get("local_server")?
        .get("secret_stores")?
        .get("liveuser_secrets")?
        .as_array()?;
    let token = entries.iter().find_map(|e| {
        let table = e.as_inline_table()?;
        (table.get("key")?.as_str()? == "admin_token")
            .then(|| table.get("data")?.as_str().map(String::from))
            .flatten()
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_manifest_gives_the_local_token() {
        let manifest = include_str!("../../fastly.toml");
        assert_eq!(
            admin_token_in(manifest).as_deref(),
            Some("liveuser-local-development-admin-token")
        );
        assert_eq!(admin_token_in("[local_server]"), None);
    }

    #[test]
    fn only_loopback_services_are_local() {
        for url in [
            "http://127.0.0.1:7676",
            "http://localhost:7676",
            "http://[::1]:7676",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in ["https://a.edgecompute.app", "http://127.0.0.1.example"] {
            assert!(!is_local(url), "{url}");
        }
    }

    #[test]
    fn a_remote_service_needs_a_token_and_a_url() {
        let args = TargetArgs {
            service: Some("ftp://x".into()),
            admin_token_file: None,
        };
        assert!(resolve(&args).expect_err("scheme").contains("http(s) URL"));
        let args = TargetArgs {
            service: Some("https://x.example".into()),
            admin_token_file: Some("/nonexistent/token".into()),
        };
        assert!(resolve(&args).expect_err("file").contains("cannot read"));
    }
}
