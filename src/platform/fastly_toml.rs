//! The names this service expects `fastly.toml` to declare: its stores, backends, secrets and
//! log endpoint. One owner for each, so the manifest and the code cannot drift apart: a unit
//! test reads fastly.toml and checks every one is declared, locally and for deployment.

/// The KV store: presence, visits, tallies, snapshots, claims.
pub const KV_STORE: &str = "liveuser";
/// The config store: settings (see `config`) and per-site origin allow-lists.
pub const CONFIG_STORE: &str = "liveuser_config";
/// The secret store.
pub const SECRET_STORE: &str = "liveuser_secrets";
/// Secret: the bearer token admin endpoints require (without it they answer 403).
pub const ADMIN_TOKEN_SECRET: &str = "admin_token";
/// Secret: the Fastly API token that may publish to this service's Fanout channels.
pub const PUBLISH_TOKEN_SECRET: &str = "fanout_publish_token";
/// Secrets: the two slots of the key SSE sessions are signed with, `a` then `b` (see
/// `secrets::KeyRing`). The `session_key` config item names the one new sessions are signed
/// under; the other still verifies, so a rotation writes the other slot and then names it.
pub const SESSION_KEY_SECRETS: [&str; 2] = ["session_key_a", "session_key_b"];
/// Secret, local only: the key the local Pushpin signs its calls with (HS256).
pub const GRIP_KEY_SECRET: &str = "grip_hs256_key";
/// This service itself: the backend Fanout hands WebSockets to, and a split count calls.
pub const FANOUT_BACKEND: &str = "self";
/// The backend for Fastly's API, where count updates are published.
pub const FASTLY_API_BACKEND: &str = "fastly_api";
/// The backend for the local Pushpin's publish endpoint.
pub const LOCAL_PUBLISH_BACKEND: &str = "publisher";
/// Where the local Pushpin takes publishes (through [`LOCAL_PUBLISH_BACKEND`]).
pub const LOCAL_PUBLISH_URL: &str = "http://127.0.0.1:5561/publish/";
/// The log endpoint production log lines also go to (stdout stays, for local runs).
pub const LOG_ENDPOINT: &str = "liveuser_log";

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use toml_edit::{DocumentMut, Item};

    fn manifest() -> DocumentMut {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fastly.toml");
        std::fs::read_to_string(path)
            .expect("read fastly.toml")
            .parse()
            .expect("fastly.toml is TOML")
    }

    fn table<'a>(doc: &'a DocumentMut, path: &[&str]) -> Option<&'a Item> {
        path.iter()
            .try_fold(doc.as_item(), |item, key| item.get(*key))
    }

    #[test]
    fn fastly_toml_declares_every_name_for_deployment() {
        let doc = manifest();
        for (kind, name) in [
            ("kv_stores", KV_STORE),
            ("config_stores", CONFIG_STORE),
            ("secret_stores", SECRET_STORE),
            ("backends", FANOUT_BACKEND),
            ("backends", FASTLY_API_BACKEND),
            ("log_endpoints", LOG_ENDPOINT),
        ] {
            assert!(
                table(&doc, &["setup", kind, name]).is_some_and(Item::is_table),
                "[setup.{kind}.{name}] is missing"
            );
        }
    }

    #[test]
    fn fastly_toml_declares_every_name_locally() {
        let doc = manifest();
        for (kind, name) in [
            ("kv_stores", KV_STORE),
            ("config_stores", CONFIG_STORE),
            ("secret_stores", SECRET_STORE),
            ("backends", FANOUT_BACKEND),
            ("backends", FASTLY_API_BACKEND),
            ("backends", LOCAL_PUBLISH_BACKEND),
        ] {
            assert!(
                table(&doc, &["local_server", kind, name]).is_some(),
                "[local_server.{kind}.{name}] is missing"
            );
        }
        let publisher = table(
            &doc,
            &["local_server", "backends", LOCAL_PUBLISH_BACKEND, "url"],
        )
        .and_then(Item::as_str)
        .expect("the local publisher has a url");
        assert!(
            LOCAL_PUBLISH_URL.starts_with(publisher),
            "{LOCAL_PUBLISH_URL} is not on backend {LOCAL_PUBLISH_BACKEND} ({publisher})"
        );
        let secrets = table(&doc, &["local_server", "secret_stores", SECRET_STORE])
            .and_then(Item::as_array)
            .expect("local secrets are an array");
        for key in [GRIP_KEY_SECRET, ADMIN_TOKEN_SECRET] {
            assert!(
                secrets.iter().any(|s| s
                    .as_inline_table()
                    .and_then(|t| t.get("key"))
                    .and_then(|k| k.as_str())
                    == Some(key)),
                "local secret {key} is missing"
            );
        }
    }
}
