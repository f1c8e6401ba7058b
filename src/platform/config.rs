//! Settings, read from the `liveuser_config` config store.
//!
//! Every setting has a default, so a service without the store still runs. A value that does
//! not parse or is out of range is reported (the caller logs it) and the default is used:
//! a typo in the config store must not take the service down.

use crate::platform::secrets::{KeySlot, Secrets};
use crate::wire::grip_sig::GripVerifier;

/// Where settings come from: the host's config store, or a map in tests.
pub trait ConfigSource {
    fn get(&self, key: &str) -> Option<String>;
}

impl ConfigSource for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::HashMap::get(self, key).cloned()
    }
}

/// The service's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often clients send a heartbeat, in seconds (the original client: 30).
    pub heartbeat_interval_secs: u32,
    /// How far ahead each heartbeat writes a connection's presence, in seconds (more than one
    /// heartbeat interval, at most two). A connection that vanishes without a close stops
    /// counting when the window (one interval long) this reaches ends: between this and an
    /// interval more after its last heartbeat. Default: one and a half intervals.
    pub presence_ttl_secs: u32,
    /// How often, at most, a site's presence keys are swept for connections that vanished
    /// without an event (one sweep per site across all POPs), in seconds.
    pub sweep_interval_secs: u32,
    /// The shortest time between two count broadcasts to one site, in milliseconds.
    pub broadcast_interval_ms: u32,
    /// How long a broadcaster waits for the KV store to settle before counting, in milliseconds.
    pub kv_settle_ms: u32,
    /// How many readers one execution of a count lists at most (`census_leaf_keys`, default
    /// 900: under one list page); a larger site's count is split over requests to the service
    /// itself (see `count::census`).
    pub census_leaf_keys: u32,
    /// How Fanout's `Grip-Sig` is verified.
    pub grip: GripMode,
    /// The issuer local HS256 signatures carry (`grip_hs256_issuer`): whatever signs locally.
    /// The Fastly CLI's own Pushpin signs as `viceroy`, the default.
    pub grip_hs256_issuer: String,
    /// Where count updates are published.
    pub publish: PublishMode,
    /// What one client (one address) may do: sockets per site (`max_sockets_per_client`,
    /// default 20), visits per site an hour (`max_visits_per_client_hour`, default 30), API
    /// reads a minute (`max_api_reads_per_client_minute`, default 120), counted readers one
    /// network starts on a site a minute (`max_new_presences_per_network_minute`, default 60).
    pub limits: Limits,
    /// Whether log lines also go to the `liveuser_log` endpoint (`log_endpoint`: `on`, the
    /// default; `off` locally, where stdout is the log).
    pub log_endpoint: bool,
    /// Whether crawlers and automated browsers are counted (`count_automated`: `off`, the
    /// default; `on` locally, where tests drive headless browsers). See `automated`.
    pub count_automated: bool,
    /// Which slot's secret signs new SSE sessions (`session_key`: `a`, the default, or `b`;
    /// see `secrets::KeyRing`).
    pub session_key: KeySlot,
    /// Whether a site without a registry entry is served (`unregistered_sites`: `refuse`, the
    /// default, or `serve`, what the local stack sets). See `count::registry`.
    pub unregistered_sites: UnregisteredSites,
    /// Whether a webhook may be sent over plain HTTP (`webhook_http`: `refuse`, the default:
    /// only `https://` URLs are taken; or `loopback`: `http://` to this machine too, what the
    /// local stack sets so a test's receiver needs no certificate). See `count::hooks`.
    pub webhook_http: WebhookHttp,
}

/// Which webhook URLs may be plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookHttp {
    /// None: `https://` only (production).
    Refuse,
    /// `http://` to a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`) too (local runs).
    Loopback,
}

/// What becomes of a site the registry has no entry for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnregisteredSites {
    /// 404 `unknown_site`: only registered sites are counted (production).
    Refuse,
    /// Served with no settings, as the original serves any site id (local runs).
    Serve,
}

/// The issuer the Fastly CLI's local Pushpin signs with.
pub const DEFAULT_HS256_ISSUER: &str = "viceroy";

/// Where count updates are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// Fastly's publish API for this service, with the `fanout_publish_token` secret.
    Fastly,
    /// Local Pushpin's publish endpoint.
    Local,
}

/// Which signature Fanout's calls carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GripMode {
    /// Fastly Fanout: ES256 with Fastly's public key, issuer `fastly:<service id>` (production).
    FastlyEs256,
    /// Local Pushpin: HS256 with the `grip_hs256_key` secret and the configured issuer.
    PushpinHs256,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval_secs: 30,
            presence_ttl_secs: 45,
            sweep_interval_secs: 10,
            broadcast_interval_ms: 500,
            kv_settle_ms: 300,
            census_leaf_keys: 900,
            grip: GripMode::FastlyEs256,
            grip_hs256_issuer: DEFAULT_HS256_ISSUER.to_string(),
            publish: PublishMode::Fastly,
            log_endpoint: true,
            count_automated: false,
            session_key: KeySlot::A,
            unregistered_sites: UnregisteredSites::Refuse,
            webhook_http: WebhookHttp::Refuse,
            limits: Limits {
                sockets_per_site: 20,
                visits_per_site_hour: 30,
                api_reads_per_minute: 120,
                new_presences_per_minute: 60,
            },
        }
    }
}

/// How much one client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sockets one client may hold open on one site.
    pub sockets_per_site: u32,
    /// Visits one client may add to one site's total in an hour.
    pub visits_per_site_hour: u32,
    /// API reads one client may make in a minute.
    pub api_reads_per_minute: u32,
    /// Counted readers one network (an IPv6 /48, an IPv4 address) may start on one site in a
    /// minute.
    pub new_presences_per_minute: u32,
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
        let presence_ttl_secs = read(
            "presence_ttl_secs",
            default_ttl(heartbeat_interval_secs),
            1,
            7200,
        );
        let sweep_interval_secs = read(
            "sweep_interval_secs",
            (heartbeat_interval_secs / 3).max(1),
            1,
            3600,
        );
        let broadcast_interval_ms = read(
            "broadcast_interval_ms",
            defaults.broadcast_interval_ms,
            50,
            10_000,
        );
        let kv_settle_ms = read("kv_settle_ms", defaults.kv_settle_ms, 0, 5_000);
        let census_leaf_keys = read("census_leaf_keys", defaults.census_leaf_keys, 1, 100_000);
        let limits = Limits {
            // A refused upgrade tries every ticket: the most is kept modest.
            sockets_per_site: read(
                "max_sockets_per_client",
                defaults.limits.sockets_per_site,
                1,
                1_000,
            ),
            visits_per_site_hour: read(
                "max_visits_per_client_hour",
                defaults.limits.visits_per_site_hour,
                1,
                1_000_000,
            ),
            api_reads_per_minute: read(
                "max_api_reads_per_client_minute",
                defaults.limits.api_reads_per_minute,
                1,
                1_000_000,
            ),
            new_presences_per_minute: read(
                "max_new_presences_per_network_minute",
                defaults.limits.new_presences_per_minute,
                1,
                1_000_000,
            ),
        };
        let grip = read_choice(
            source,
            &mut warnings,
            "grip_verify",
            &[
                ("fastly-es256", GripMode::FastlyEs256),
                ("pushpin-hs256", GripMode::PushpinHs256),
            ],
        );
        let publish = read_choice(
            source,
            &mut warnings,
            "publish_target",
            &[
                ("fastly", PublishMode::Fastly),
                ("local", PublishMode::Local),
            ],
        );
        let log_endpoint = read_choice(
            source,
            &mut warnings,
            "log_endpoint",
            &[("on", true), ("off", false)],
        );
        let count_automated = read_choice(
            source,
            &mut warnings,
            "count_automated",
            &[("off", false), ("on", true)],
        );
        let session_key = read_choice(
            source,
            &mut warnings,
            "session_key",
            &[("a", KeySlot::A), ("b", KeySlot::B)],
        );
        let unregistered_sites = read_choice(
            source,
            &mut warnings,
            "unregistered_sites",
            &[
                ("refuse", UnregisteredSites::Refuse),
                ("serve", UnregisteredSites::Serve),
            ],
        );
        let webhook_http = read_choice(
            source,
            &mut warnings,
            "webhook_http",
            &[
                ("refuse", WebhookHttp::Refuse),
                ("loopback", WebhookHttp::Loopback),
            ],
        );
        let mut config = Config {
            webhook_http,
            count_automated,
            session_key,
            unregistered_sites,
            heartbeat_interval_secs,
            presence_ttl_secs,
            sweep_interval_secs,
            broadcast_interval_ms,
            kv_settle_ms,
            census_leaf_keys,
            grip,
            limits,
            log_endpoint,
            grip_hs256_issuer: source
                .get("grip_hs256_issuer")
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| DEFAULT_HS256_ISSUER.to_string()),
            publish,
        };
        // A TTL at or below the heartbeat interval would drop live connections between beats.
        if config.presence_ttl_secs <= config.heartbeat_interval_secs {
            warnings.push(ConfigWarning {
                key: "presence_ttl_secs",
                value: config.presence_ttl_secs.to_string(),
                reason: "must exceed heartbeat_interval_secs",
            });
            config.presence_ttl_secs = default_ttl(config.heartbeat_interval_secs);
        }
        // A presence reaches at most three heartbeat-interval windows ahead (see `presence`):
        // every heartbeat writes at most the windows it reaches, and a lease names them all.
        if config.presence_ttl_secs > 2 * config.heartbeat_interval_secs {
            warnings.push(ConfigWarning {
                key: "presence_ttl_secs",
                value: config.presence_ttl_secs.to_string(),
                reason: "must be at most twice heartbeat_interval_secs",
            });
            config.presence_ttl_secs = default_ttl(config.heartbeat_interval_secs);
        }
        (config, warnings)
    }

    /// How long Fanout may hold a connection without calling the service before it calls
    /// anyway (the `Keep-Alive-Interval` reply header, whose least value is 20 s). A little more
    /// than the heartbeat interval: a page that heartbeats on time never causes one, and a
    /// background tab whose timers the browser throttles to once a minute is still refreshed
    /// before its presence expires (the call refreshes it as a heartbeat would).
    pub fn keep_alive_secs(&self) -> u32 {
        (self.heartbeat_interval_secs + 5).max(20)
    }
}

/// One and a half heartbeat intervals (rounded up).
fn default_ttl(heartbeat_interval_secs: u32) -> u32 {
    heartbeat_interval_secs + heartbeat_interval_secs.div_ceil(2)
}

/// Reads a setting that names one of `choices` (the first is the default).
fn read_choice<T: Copy>(
    source: &dyn ConfigSource,
    warnings: &mut Vec<ConfigWarning>,
    key: &'static str,
    choices: &[(&'static str, T)],
) -> T {
    let default = choices[0].1;
    let Some(raw) = source.get(key) else {
        return default;
    };
    match choices.iter().find(|(name, _)| *name == raw.trim()) {
        Some((_, value)) => *value,
        None => {
            warnings.push(ConfigWarning {
                key,
                value: raw,
                reason: "not one of the accepted values",
            });
            default
        }
    }
}

/// The Grip-Sig verifier the configuration asks for: Fastly's ES256 key and issuer
/// `fastly:<service_id>` in production, or HS256 with the `grip_hs256_key` secret and the
/// configured issuer locally. A verifier that cannot be built refuses every call, saying why.
pub fn grip_verifier(config: &Config, service_id: &str, secrets: &dyn Secrets) -> GripVerifier {
    match config.grip {
        GripMode::PushpinHs256 => {
            match secrets.get(crate::platform::fastly_toml::GRIP_KEY_SECRET) {
                Some(key) if !key.is_empty() => {
                    GripVerifier::hs256(&key, &config.grip_hs256_issuer)
                }
                _ => GripVerifier::Unconfigured(format!(
                    "secret {} missing from {}",
                    crate::platform::fastly_toml::GRIP_KEY_SECRET,
                    crate::platform::fastly_toml::SECRET_STORE
                )),
            }
        }
        GripMode::FastlyEs256 => {
            GripVerifier::fastly(service_id).unwrap_or_else(GripVerifier::Unconfigured)
        }
    }
}

/// Settings from `(name, value)` pairs, as a config store would hold them (tests).
#[cfg(test)]
pub(crate) fn settings_from(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        settings_from(pairs)
    }

    #[test]
    fn empty_source_gives_defaults() {
        assert_eq!(Config::load(&source(&[])), (Config::default(), vec![]));
    }

    #[test]
    fn ttl_and_sweeps_follow_the_heartbeat_interval() {
        let (config, warnings) = Config::load(&source(&[("heartbeat_interval_secs", "2")]));
        assert!(warnings.is_empty());
        assert_eq!(config.heartbeat_interval_secs, 2);
        assert_eq!(config.presence_ttl_secs, 3);
        assert_eq!(config.sweep_interval_secs, 1);
        assert_eq!(config.keep_alive_secs(), 20);
        let defaults = Config::default();
        assert_eq!(
            (defaults.presence_ttl_secs, defaults.sweep_interval_secs),
            (45, 10)
        );
        assert_eq!(defaults.keep_alive_secs(), 35);
        // A vanished connection stops counting when the window its presence reaches ends
        // (at most a lifetime and an interval), and a sweep notices within its interval.
        let longest = defaults.presence_ttl_secs + defaults.heartbeat_interval_secs;
        assert!(longest + defaults.sweep_interval_secs <= 3 * defaults.heartbeat_interval_secs);
    }

    #[test]
    fn a_presence_reaches_at_most_two_intervals_ahead() {
        let (config, warnings) = Config::load(&source(&[
            ("heartbeat_interval_secs", "10"),
            ("presence_ttl_secs", "45"),
        ]));
        assert_eq!(config.presence_ttl_secs, 15);
        assert_eq!(
            warnings[0].reason,
            "must be at most twice heartbeat_interval_secs"
        );
        let (config, warnings) = Config::load(&source(&[
            ("heartbeat_interval_secs", "10"),
            ("presence_ttl_secs", "20"),
        ]));
        assert_eq!((config.presence_ttl_secs, warnings.len()), (20, 0));
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
        assert_eq!(config.grip_hs256_issuer, "viceroy");
        let (config, _) = Config::load(&source(&[("grip_hs256_issuer", "pushpin")]));
        assert_eq!(config.grip_hs256_issuer, "pushpin");
        let (config, warnings) = Config::load(&source(&[("grip_verify", "none")]));
        assert_eq!(config.grip, GripMode::FastlyEs256);
        assert_eq!(warnings[0].key, "grip_verify");
    }

    #[test]
    fn publish_target_defaults_to_fastly() {
        assert_eq!(Config::load(&source(&[])).0.publish, PublishMode::Fastly);
        let (config, _) = Config::load(&source(&[("publish_target", "local")]));
        assert_eq!(config.publish, PublishMode::Local);
        let (config, warnings) = Config::load(&source(&[("publish_target", "elsewhere")]));
        assert_eq!(config.publish, PublishMode::Fastly);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn plain_http_webhooks_are_refused_unless_the_config_allows_loopback() {
        assert_eq!(
            Config::load(&source(&[])).0.webhook_http,
            WebhookHttp::Refuse
        );
        let (config, _) = Config::load(&source(&[("webhook_http", "loopback")]));
        assert_eq!(config.webhook_http, WebhookHttp::Loopback);
        let (config, warnings) = Config::load(&source(&[("webhook_http", "any")]));
        assert_eq!(config.webhook_http, WebhookHttp::Refuse);
        assert_eq!(warnings[0].key, "webhook_http");
    }

    #[test]
    fn ttl_not_above_the_interval_is_corrected() {
        let (config, warnings) = Config::load(&source(&[
            ("heartbeat_interval_secs", "10"),
            ("presence_ttl_secs", "10"),
        ]));
        assert_eq!(config.presence_ttl_secs, 15);
        assert_eq!(warnings.len(), 1);
    }
}

// Tokens are minted with the testkit (native only).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod verifier_tests {
    use super::*;

    #[test]
    fn the_verifier_follows_the_configuration() {
        let mut config = Config {
            grip: GripMode::PushpinHs256,
            grip_hs256_issuer: "viceroy".into(),
            ..Config::default()
        };
        let mut secrets = std::collections::HashMap::new();
        let missing = grip_verifier(&config, "SVC", &secrets);
        assert!(
            matches!(missing, GripVerifier::Unconfigured(ref why) if why.contains("grip_hs256_key"))
        );
        secrets.insert("grip_hs256_key".to_string(), b"k".to_vec());
        let local = grip_verifier(&config, "SVC", &secrets);
        assert_eq!(
            local.verify(
                Some(&liveuser_testkit::jwt::hs256_token(b"k", "viceroy", 100)),
                50
            ),
            Ok(())
        );
        assert_eq!(
            local.verify(
                Some(&liveuser_testkit::jwt::hs256_token(b"k", "pushpin", 100)),
                50
            ),
            Err(crate::wire::grip_sig::SigError::WrongIssuer)
        );
        config.grip = GripMode::FastlyEs256;
        assert!(matches!(
            grip_verifier(&config, "SVC", &secrets),
            GripVerifier::Es256 { .. }
        ));
    }
}
