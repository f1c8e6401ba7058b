//! Settings, read from the `liveuser_config` config store.
//!
//! Every setting has a default, so a service without the store still runs. A value that does
//! not parse or is out of range is reported (the caller logs it) and the default is used:
//! a typo in the config store must not take the service down.

/// Where settings come from: the host's config store, or a map in tests.
pub trait ConfigSource {
    fn get(&self, key: &str) -> Option<String>;
}

impl ConfigSource for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::HashMap::get(self, key).cloned()
    }
}

/// The name of the config store in `fastly.toml`.
pub const STORE_NAME: &str = "liveuser_config";

/// The service's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often clients send a heartbeat, in seconds (the original client: 30).
    pub heartbeat_interval_secs: u32,
    /// How long a presence entry lives without a heartbeat, in seconds. A connection that
    /// vanishes without a close stops counting this long after its last heartbeat.
    pub presence_ttl_secs: u32,
    /// The shortest time between two count broadcasts to one site, in milliseconds.
    pub broadcast_interval_ms: u32,
    /// How long a broadcaster waits for the KV store to settle before counting, in milliseconds.
    pub kv_settle_ms: u32,
    /// How Fanout's `Grip-Sig` is verified.
    pub grip: GripMode,
}

/// Which signature Fanout's calls carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GripMode {
    /// Fastly Fanout: ES256 with Fastly's public key, issuer `fastly:<service id>` (production).
    FastlyEs256,
    /// Local Pushpin: HS256 with the `grip_hs256_key` secret, issuer `pushpin`.
    PushpinHs256,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval_secs: 30,
            presence_ttl_secs: 60,
            broadcast_interval_ms: 500,
            kv_settle_ms: 300,
            grip: GripMode::FastlyEs256,
        }
    }
}

/// A setting that was present but unusable, and was replaced by its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Config {
    /// Reads every setting from `source`; returns the config and what had to be defaulted.
    pub fn load(source: &dyn ConfigSource) -> (Config, Vec<ConfigWarning>) {
        let defaults = Config::default();
        let mut warnings = Vec::new();
        let mut read = |key: &'static str, default: u32, min: u32, max: u32| -> u32 {
            let Some(raw) = source.get(key) else {
                return default;
            };
            match raw.trim().parse::<u32>() {
                Ok(v) if (min..=max).contains(&v) => v,
                Ok(_) => {
                    warnings.push(ConfigWarning {
                        key,
                        value: raw,
                        reason: "out of range",
                    });
                    default
                }
                Err(_) => {
                    warnings.push(ConfigWarning {
                        key,
                        value: raw,
                        reason: "not a whole number",
                    });
                    default
                }
            }
        };
        let heartbeat_interval_secs = read(
            "heartbeat_interval_secs",
            defaults.heartbeat_interval_secs,
            1,
            3600,
        );
        let presence_ttl_secs = read("presence_ttl_secs", heartbeat_interval_secs * 2, 1, 7200);
        let broadcast_interval_ms = read(
            "broadcast_interval_ms",
            defaults.broadcast_interval_ms,
            50,
            10_000,
        );
        let kv_settle_ms = read("kv_settle_ms", defaults.kv_settle_ms, 0, 5_000);
        let grip = match source.get("grip_verify").as_deref().map(str::trim) {
            None | Some("fastly-es256") => GripMode::FastlyEs256,
            Some("pushpin-hs256") => GripMode::PushpinHs256,
            Some(other) => {
                warnings.push(ConfigWarning {
                    key: "grip_verify",
                    value: other.to_string(),
                    reason: "expected fastly-es256 or pushpin-hs256",
                });
                GripMode::FastlyEs256
            }
        };
        let mut config = Config {
            heartbeat_interval_secs,
            presence_ttl_secs,
            broadcast_interval_ms,
            kv_settle_ms,
            grip,
        };
        // A TTL at or below the heartbeat interval would drop live connections between beats.
        if config.presence_ttl_secs <= config.heartbeat_interval_secs {
            warnings.push(ConfigWarning {
                key: "presence_ttl_secs",
                value: config.presence_ttl_secs.to_string(),
                reason: "must exceed heartbeat_interval_secs",
            });
            config.presence_ttl_secs = config.heartbeat_interval_secs * 2;
        }
        (config, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_source_gives_defaults() {
        assert_eq!(Config::load(&source(&[])), (Config::default(), vec![]));
    }

    #[test]
    fn ttl_defaults_to_two_heartbeats() {
        let (config, warnings) = Config::load(&source(&[("heartbeat_interval_secs", "2")]));
        assert!(warnings.is_empty());
        assert_eq!(config.heartbeat_interval_secs, 2);
        assert_eq!(config.presence_ttl_secs, 4);
    }

    #[test]
    fn bad_values_fall_back_with_a_warning() {
        let (config, warnings) = Config::load(&source(&[
            ("heartbeat_interval_secs", "abc"),
            ("broadcast_interval_ms", "1"),
        ]));
        assert_eq!(config, Config::default());
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].key, "heartbeat_interval_secs");
        assert_eq!(warnings[1].reason, "out of range");
    }

    #[test]
    fn grip_mode_defaults_to_production_and_refuses_unknown_values() {
        let (config, _) = Config::load(&source(&[("grip_verify", "pushpin-hs256")]));
        assert_eq!(config.grip, GripMode::PushpinHs256);
        let (config, warnings) = Config::load(&source(&[("grip_verify", "none")]));
        assert_eq!(config.grip, GripMode::FastlyEs256);
        assert_eq!(warnings[0].key, "grip_verify");
    }

    #[test]
    fn ttl_not_above_the_interval_is_corrected() {
        let (config, warnings) = Config::load(&source(&[
            ("heartbeat_interval_secs", "10"),
            ("presence_ttl_secs", "10"),
        ]));
        assert_eq!(config.presence_ttl_secs, 20);
        assert_eq!(warnings.len(), 1);
    }
}
