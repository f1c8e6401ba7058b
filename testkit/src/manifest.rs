//! The project's fastly.toml, read and edited as TOML, never as text: the first
//! `fastly compute publish` rewrites the file (adds `service_id`, drops the comments, lays it
//! out anew), so nothing here may depend on its layout. The names come from the service's own
//! `fastly_toml` module.

use std::path::Path;

use liveuser_edge::platform::fastly_toml::{CONFIG_STORE, SECRET_STORE};
use toml_edit::{value, DocumentMut, InlineTable, Item, Table, Value};

/// A fastly.toml being read or edited.
#[derive(Debug, Clone)]
pub struct Manifest {
    doc: DocumentMut,
}

impl Manifest {
    pub fn read(path: &Path) -> Manifest {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Manifest, String> {
        text.parse::<DocumentMut>()
            .map(|doc| Manifest { doc })
            .map_err(|e| format!("not TOML: {e}"))
    }

    fn get(&self, path: &[&str]) -> Option<&Item> {
        path.iter()
            .try_fold(self.doc.as_item(), |item, key| item.get(*key))
    }

    /// The table at `path`, created (implicitly, as headers) where missing.
    fn table_mut(&mut self, path: &[&str]) -> &mut Table {
        let mut table = self.doc.as_table_mut();
        for key in path {
            let item = table
                .entry(key)
                .or_insert_with(|| Item::Table(Table::new()));
            table = item
                .as_table_mut()
                .unwrap_or_else(|| panic!("fastly.toml: {key} is not a table"));
        }
        table
    }

    /// `local_server.backends.<name>.url`.
    pub fn backend_url(&self, name: &str) -> Option<&str> {
        self.get(&["local_server", "backends", name, "url"])?
            .as_str()
    }

    pub fn set_backend_url(&mut self, name: &str, url: &str) {
        self.table_mut(&["local_server", "backends", name])["url"] = value(url);
    }

    /// A value of the local config store.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.get(&[
            "local_server",
            "config_stores",
            CONFIG_STORE,
            "contents",
            key,
        ])?
        .as_str()
    }

    pub fn set_config(&mut self, key: &str, v: &str) {
        self.table_mut(&["local_server", "config_stores", CONFIG_STORE, "contents"])[key] =
            value(v);
    }

    /// The local secrets as (key, data), however the array is written (inline, or as an
    /// array of tables, as the CLI writes it back).
    fn secrets(&self) -> Vec<(String, String)> {
        let pair =
            |key: Option<&str>, data: Option<&str>| Some((key?.to_string(), data?.to_string()));
        match self.get(&["local_server", "secret_stores", SECRET_STORE]) {
            Some(Item::Value(Value::Array(a))) => a
                .iter()
                .filter_map(Value::as_inline_table)
                .filter_map(|t| pair(t.get("key")?.as_str(), t.get("data")?.as_str()))
                .collect(),
            Some(Item::ArrayOfTables(a)) => a
                .iter()
                .filter_map(|t| pair(t.get("key")?.as_str(), t.get("data")?.as_str()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A secret of the local secret store.
    pub fn secret(&self, key: &str) -> Option<String> {
        self.secrets()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, data)| data)
    }

    /// Sets (or adds) a local secret; the array is rewritten inline.
    pub fn set_secret(&mut self, key: &str, data: &str) {
        let mut secrets = self.secrets();
        secrets.retain(|(k, _)| k != key);
        secrets.push((key.to_string(), data.to_string()));
        self.write_secrets(secrets);
    }

    pub fn remove_secret(&mut self, key: &str) {
        let mut secrets = self.secrets();
        secrets.retain(|(k, _)| k != key);
        self.write_secrets(secrets);
    }

    fn write_secrets(&mut self, secrets: Vec<(String, String)>) {
        let mut array = toml_edit::Array::new();
        for (key, data) in secrets {
            let mut entry = InlineTable::new();
            entry.insert("key", key.into());
            entry.insert("data", data.into());
            array.push(entry);
        }
        self.table_mut(&["local_server", "secret_stores"])[SECRET_STORE] = value(array);
    }

    /// `service_id`, once a publish has created the service.
    pub fn service_id(&self) -> Option<&str> {
        self.get(&["service_id"])?
            .as_str()
            .filter(|s| !s.is_empty())
    }
}

impl std::fmt::Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::project_root;

    #[test]
    fn edits_the_projects_manifest_without_depending_on_its_layout() {
        let mut m = Manifest::read(&project_root().join("fastly.toml"));
        assert_eq!(m.backend_url("self"), Some("http://127.0.0.1:7676"));
        m.set_backend_url("self", "http://127.0.0.1:9");
        m.set_config("heartbeat_interval_secs", "2");
        m.set_config("origins.shop", "https://a.example");
        m.set_secret("grip_hs256_key", "k");
        m.set_secret("extra", "x");
        m.remove_secret("admin_token");
        // Laid out differently, as a publish would leave it: the same reading.
        let again = Manifest::parse(&m.to_string()).expect("still TOML");
        assert_eq!(again.backend_url("self"), Some("http://127.0.0.1:9"));
        assert_eq!(again.config("heartbeat_interval_secs"), Some("2"));
        assert_eq!(again.config("origins.shop"), Some("https://a.example"));
        assert_eq!(again.secret("grip_hs256_key").as_deref(), Some("k"));
        assert_eq!(again.secret("extra").as_deref(), Some("x"));
        assert_eq!(again.secret("admin_token"), None);
        assert_eq!(again.service_id(), None);
    }

    #[test]
    fn reads_a_manifest_as_the_cli_rewrites_it() {
        let rewritten = r#"
authors = ["x"]
language = "rust"
manifest_version = 3
name = "liveuser-edge"
service_id = "SVC123"

[local_server]
  [local_server.backends]
    [local_server.backends.self]
      url = "http://127.0.0.1:7676"
  [local_server.config_stores]
    [local_server.config_stores.liveuser_config]
      format = "inline-toml"
      [local_server.config_stores.liveuser_config.contents]
        heartbeat_interval_secs = "30"
  [local_server.secret_stores]

    [[local_server.secret_stores.liveuser_secrets]]
      data = "abc"
      key = "grip_hs256_key"
"#;
        let m = Manifest::parse(rewritten).expect("TOML");
        assert_eq!(m.service_id(), Some("SVC123"));
        assert_eq!(m.backend_url("self"), Some("http://127.0.0.1:7676"));
        assert_eq!(m.config("heartbeat_interval_secs"), Some("30"));
        assert_eq!(m.secret("grip_hs256_key").as_deref(), Some("abc"));
    }
}
