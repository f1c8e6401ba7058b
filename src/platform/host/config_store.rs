//! Settings from the Compute config store.

use fastly::ConfigStore;

use crate::platform::config::ConfigSource;

/// The `liveuser_config` store, or nothing when the service has none.
pub struct HostConfig {
    store: Option<ConfigStore>,
}

impl HostConfig {
    pub fn open(name: &str) -> HostConfig {
        HostConfig {
            store: ConfigStore::try_open(name).ok(),
        }
    }
}

impl ConfigSource for HostConfig {
    fn get(&self, key: &str) -> Option<String> {
        self.store.as_ref()?.try_get(key).ok().flatten()
    }
}

/// These run inside Viceroy, against the config store fastly.toml declares for local use.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fastly_toml::CONFIG_STORE;

    #[test]
    fn reads_the_local_settings_and_nothing_from_a_missing_store() {
        let settings = HostConfig::open(CONFIG_STORE);
        assert_eq!(settings.get("publish_target").as_deref(), Some("local"));
        assert_eq!(settings.get("no-such-setting"), None);
        assert_eq!(
            HostConfig::open("no-such-store").get("publish_target"),
            None
        );
    }
}
