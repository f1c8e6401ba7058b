//! Settings from the Compute config store.

use fastly::ConfigStore;

use crate::config::ConfigSource;

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
