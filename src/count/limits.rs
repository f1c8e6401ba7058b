//! What one client (one network address) may do: hold a few sockets open on one site, count a
//! few visits an hour on one site, and make the API read the store so often a minute (reads the
//! POP's cache answers are free: see `surfaces::access`). Without these, one host could open
//! thousands of counted sockets, add a visit with every open, or make the store answer in a
//! loop.
//!
//! The address is never stored or logged: it is turned at once into a [`ClientKey`], an HMAC of
//! it under a key that changes every day, so a key says nothing outside that day. The day's key
//! is derived from the service's own secret, so no cache fault can change it request by request
//! (which would give every request a fresh share, and switch every limit off); only a service
//! with no secret at all keeps a random one in the POP's cache instead.
//!
//! Limits are counted in the POP's cache, which works the same on Fastly and locally (Fastly's
//! Edge Rate Limiting would not: Viceroy's is a no-op). A limit is a set of numbered tickets:
//! a client takes the first free one with an insert-only claim (exactly one request can take a
//! ticket), so concurrent requests from one address cannot overshoot. A socket's ticket is
//! released when it closes and kept alive by its heartbeats; visit and read tickets lapse with
//! their hour or minute. Limits are per POP: a client spread over many POPs gets each POP's
//! share, which one address rarely is. An IPv6 client is keyed by its /64 (one subscriber's
//! network; its addresses within it are free to change), and its rate limits are nested: its
//! /56 and its /48 (a tunnel broker hands out a /48, 65,536 /64s) have buckets of their own,
//! with [`WIDER_SHARES`] times a client's share, so a /48 full of /64s reads the API, adds
//! visits and opens new presences at most that many times as often as one client. When the
//! cache cannot answer, a limit is not applied (and that is logged): a cache fault must not
//! lock readers out.
//!
//! A new day's secret gives every client a new key, and with it a fresh share: around
//! midnight UTC a client may briefly hold up to twice its sockets.

use crate::platform::cache::{self, CacheFailed, SharedCache};
use crate::platform::config::{Config, Limits};
use crate::platform::ids::IdSource;
use crate::platform::secrets::{derived_key, hex_prefix, hmac_sha256, Secrets};
use crate::wire::site::SiteId;

/// The hashed address of one client, as limits key it: the key of its own network, then (IPv6)
/// those of the wider networks it is in, its /56 and its /48, `.`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey(String);

/// How many times a client's share the wider networks of an IPv6 client get: its /56, its /48.
pub const WIDER_SHARES: [u32; 2] = [4, 16];

impl ClientKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key read back from connection meta: one, or (IPv6) three, 32 lowercase hex digits
    /// `.`-separated; or nothing.
    pub fn parse(text: &str) -> Option<ClientKey> {
        let one = |part: &str| {
            part.len() == 32
                && part
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        let parts: Vec<&str> = text.split('.').collect();
        (matches!(parts.len(), 1 | 3) && parts.iter().all(|p| one(p)))
            .then(|| ClientKey(text.to_string()))
    }

    /// The key of the client's own network (its address, or its IPv6 /64).
    pub fn own(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// Each network's key with its share of a limit: its own (1), then the wider ones'.
    fn networks(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0
            .split('.')
            .zip(std::iter::once(1).chain(WIDER_SHARES))
    }

    /// The widest network's key (an IPv6 client's /48; an IPv4 client's address).
    fn widest(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }
}

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;

/// What a limit said of one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the client's share (and counted).
    Within,
    /// Over it.
    Over,
    /// The cache could not say: allowed, unchecked.
    Unchecked,
}

/// Whether a socket may open, and the ticket it holds if so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketAdmission {
    Ticket(u32),
    Full,
    /// The cache could not say: allowed, without a ticket.
    Unchecked,
}

/// The networks of an address that limits key: the address itself for IPv4; for IPv6 its /64
/// (one client), then its /56 and its /48.
fn networks_of(address: &str) -> Vec<String> {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => vec![v4.to_string()],
            None => {
                let bits = u128::from(v6);
                [64u32, 56, 48]
                    .iter()
                    .map(|&len| {
                        let net = std::net::Ipv6Addr::from(bits & (u128::MAX << (128 - len)));
                        format!("{net}/{len}")
                    })
                    .collect()
            }
        },
        _ => vec![address.to_string()],
    }
}

/// The client key of `address` today (the address itself goes no further).
pub fn client_key(
    secrets: &dyn Secrets,
    cache: &dyn SharedCache,
    ids: &dyn IdSource,
    now_ms: u64,
    address: &str,
) -> ClientKey {
    let day = now_ms / DAY_MS;
    let secret = match derived_key(secrets, LIMITS_KEY_LABEL) {
        Some(key) => hmac_sha256(&key, &[&day.to_be_bytes()]).to_vec(),
        None => {
            // No service secret: today's is made by the first request of the day in this POP,
            // kept by its cache a little over a day (requests a moment either side of
            // midnight use their own day's).
            let mut make = || {
                let [a, b] = ids.random_u64s();
                Some(format!("{a:016x}{b:016x}").into_bytes())
            };
            cache
                .get_or_compute(&format!("limits/secret/{day}"), DAY_MS + HOUR_MS, &mut make)
                .unwrap_or_default()
        }
    };
    let keys: Vec<String> = networks_of(address)
        .iter()
        .map(|network| hex_prefix(&hmac_sha256(&secret, &[network.as_bytes()]), 16))
        .collect();
    ClientKey(keys.join("."))
}

/// What the limits' daily keys are derived under (see `secrets::derived_key`).
const LIMITS_KEY_LABEL: &[u8] = b"liveuser limits";

/// Takes a socket ticket for `client` on `site` while it holds fewer than the limit. The
/// ticket lives `ttl_ms` unless refreshed.
pub fn take_socket(
    cache: &dyn SharedCache,
    limits: &Limits,
    site: &SiteId,
    client: &ClientKey,
    ttl_ms: u64,
) -> SocketAdmission {
    for n in 0..limits.sockets_per_site {
        match cache.try_claim(&socket_key(site, client, n), ttl_ms) {
            Ok(true) => return SocketAdmission::Ticket(n),
            Ok(false) => {}
            Err(CacheFailed) => return SocketAdmission::Unchecked,
        }
    }
    SocketAdmission::Full
}

/// Keeps a socket's ticket alive (on its heartbeats).
pub fn keep_socket(
    cache: &dyn SharedCache,
    site: &SiteId,
    client: &ClientKey,
    ticket: u32,
    ttl_ms: u64,
) {
    cache.set(&socket_key(site, client, ticket), b"1", ttl_ms);
}

/// Gives a socket's ticket back (it closed).
pub fn release_socket(cache: &dyn SharedCache, site: &SiteId, client: &ClientKey, ticket: u32) {
    // Expiring at once is releasing: the next claim takes it.
    cache.set(&socket_key(site, client, ticket), b"", 1);
}

fn socket_key(site: &SiteId, client: &ClientKey, ticket: u32) -> String {
    format!("limits/socket/{site}/{}/{ticket}", client.own())
}

/// Whether `client` may add one more visit to `site` this hour (and counts it), in its own
/// network's share and in each wider one's.
pub fn take_visit(
    cache: &dyn SharedCache,
    limits: &Limits,
    site: &SiteId,
    client: &ClientKey,
    now_ms: u64,
) -> Verdict {
    let hour = now_ms / HOUR_MS;
    take_nested(cache, client, limits.visits_per_site_hour, HOUR_MS, |key| {
        format!("limits/visit/{site}/{key}/{hour}")
    })
}

/// Whether `client` may make one more API read this minute (and counts it), in its own
/// network's share and in each wider one's.
pub fn take_api_read(
    cache: &dyn SharedCache,
    limits: &Limits,
    client: &ClientKey,
    now_ms: u64,
) -> Verdict {
    let minute = now_ms / MINUTE_MS;
    take_nested(
        cache,
        client,
        limits.api_reads_per_minute,
        MINUTE_MS,
        |key| format!("limits/api/{key}/{minute}"),
    )
}

/// Whether one more presence may start on `site` this minute from `client`'s widest network
/// (an IPv6 client's /48; an IPv4 address), and counts it: one /48 holds 65,536 clients, each
/// with its share of sockets, but starts only so many counted readers a minute.
pub fn take_new_presence(
    cache: &dyn SharedCache,
    limits: &Limits,
    site: &SiteId,
    client: &ClientKey,
    now_ms: u64,
) -> Verdict {
    let minute = now_ms / MINUTE_MS;
    let window = format!("limits/new/{site}/{}/{minute}", client.widest());
    take_in_window(cache, &window, limits.new_presences_per_minute, MINUTE_MS)
}

/// Takes a ticket in the window of each of `client`'s networks (`window`: its name for a
/// network's key), each of `limit` times the network's share, narrowest first: over in any is
/// over.
fn take_nested(
    cache: &dyn SharedCache,
    client: &ClientKey,
    limit: u32,
    ttl_ms: u64,
    window: impl Fn(&str) -> String,
) -> Verdict {
    let mut verdict = Verdict::Within;
    for (key, share) in client.networks() {
        match take_in_window(cache, &window(key), limit.saturating_mul(share), ttl_ms) {
            Verdict::Over => return Verdict::Over,
            Verdict::Unchecked => verdict = Verdict::Unchecked,
            Verdict::Within => {}
        }
    }
    verdict
}

/// When the current minute's API window ends, in whole seconds (for `Retry-After`).
pub fn api_retry_after_secs(now_ms: u64) -> u32 {
    ((MINUTE_MS - now_ms % MINUTE_MS).div_ceil(1000)) as u32
}

/// Takes the next of `limit` tickets of a window. A hint of the next free ticket keeps this
/// to a lookup and a claim or two; claims keep concurrent takers apart.
fn take_in_window(cache: &dyn SharedCache, window: &str, limit: u32, ttl_ms: u64) -> Verdict {
    let hint_key = format!("{window}/next");
    let start = cache::get_u64(cache, &hint_key)
        .unwrap_or(0)
        .min(u64::from(limit)) as u32;
    for n in start..limit {
        match cache.try_claim(&format!("{window}/{n}"), ttl_ms) {
            Ok(true) => {
                cache.set(&hint_key, (n + 1).to_string().as_bytes(), ttl_ms);
                return Verdict::Within;
            }
            Ok(false) => {}
            Err(CacheFailed) => return Verdict::Unchecked,
        }
    }
    Verdict::Over
}

/// How long a socket's ticket lives without a heartbeat: twice its presence, so only a
/// socket that vanished lets it lapse.
pub fn socket_ticket_ttl_ms(config: &Config) -> u64 {
    u64::from(config.presence_ttl_secs) * 2000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fastly_toml::GRIP_KEY_SECRET;
    use crate::platform::testing::{CountingIds, MemoryCache};
    use std::collections::HashMap;

    fn limits() -> Limits {
        Limits {
            sockets_per_site: 3,
            visits_per_site_hour: 4,
            api_reads_per_minute: 5,
            new_presences_per_minute: 6,
        }
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_its_wider_networks_share_a_bounded_budget() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let key = |a: &str| client_key(&secrets(), &cache, &ids, 0, a);
        // Addresses in one /64 are one client; the key names its /56 and /48 too.
        let me = key("2001:db8:1:100::1");
        assert_eq!(me, key("2001:db8:1:100:ffff::2"));
        assert_eq!(me.as_str().split('.').count(), 3);
        assert_eq!(ClientKey::parse(me.as_str()), Some(me.clone()));
        assert_eq!(key("192.0.2.1").as_str().split('.').count(), 1);
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        // Each /64 of one /48 reads its own 5 a minute, until the /56 (4 × 5) and the /48
        // (16 × 5) are spent; another /48 is untouched.
        let reads = |a: &str, n: u32| {
            let c = key(a);
            (0..n)
                .filter(|_| take_api_read(&cache, &limits(), &c, 0) == Verdict::Within)
                .count()
        };
        assert_eq!(reads("2001:db8:1:100::1", 9), 5, "one /64");
        let same_56: usize = (1..8)
            .map(|n| reads(&format!("2001:db8:1:1{n:02x}::1"), 5))
            .sum();
        assert_eq!(same_56, 15, "the /56 holds 20, the first /64 took 5");
        let same_48: usize = (1..=255u32)
            .map(|n| reads(&format!("2001:db8:1:{:x}00::1", n), 5))
            .sum();
        assert_eq!(same_48, 60, "the /48 holds 80, its first /56 took 20");
        assert_eq!(reads("2001:db8:2::1", 5), 5, "another /48");
        // Socket tickets stay per /64.
        let other_64 = key("2001:db8:1:101::1");
        assert_eq!(
            take_socket(&cache, &limits(), &site("a"), &other_64, 60_000),
            SocketAdmission::Ticket(0)
        );
    }

    #[test]
    fn a_network_starts_only_so_many_presences_on_a_site_a_minute() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let key = |a: &str| client_key(&secrets(), &cache, &ids, 0, a);
        // 6 a minute per site per /48, whichever of its /64s they come from.
        let started = (0..10u32)
            .filter(|n| {
                let c = key(&format!("2001:db8:7:{n:x}::1"));
                take_new_presence(&cache, &limits(), &site("a"), &c, 0) == Verdict::Within
            })
            .count();
        assert_eq!(started, 6);
        let c = key("2001:db8:7::1");
        assert_eq!(
            take_new_presence(&cache, &limits(), &site("b"), &c, 0),
            Verdict::Within
        );
        cache.clock_ms.set(MINUTE_MS);
        assert_eq!(
            take_new_presence(&cache, &limits(), &site("a"), &c, MINUTE_MS),
            Verdict::Within,
            "a new minute"
        );
    }

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).expect("site")
    }

    fn secrets() -> HashMap<String, Vec<u8>> {
        HashMap::from([(GRIP_KEY_SECRET.to_string(), b"service secret".to_vec())])
    }

    #[test]
    fn keys_are_stable_within_a_day_and_tell_nothing_across_days() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let a = client_key(&secrets(), &cache, &ids, 1_000, "192.0.2.1");
        assert_eq!(a, client_key(&secrets(), &cache, &ids, 2_000, "192.0.2.1"));
        assert_ne!(a, client_key(&secrets(), &cache, &ids, 2_000, "192.0.2.2"));
        cache.clock_ms.set(DAY_MS + 1);
        let tomorrow = client_key(&secrets(), &cache, &ids, DAY_MS + 1, "192.0.2.1");
        assert_ne!(a, tomorrow, "a new day, a new secret");
        assert!(!a.as_str().contains("192"));
        assert_eq!(ClientKey::parse(a.as_str()), Some(a.clone()));
        assert_eq!(ClientKey::parse("192.0.2.1"), None);
    }

    #[test]
    fn a_cache_fault_changes_no_key_so_no_limit_is_switched_off() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let before = client_key(&secrets(), &cache, &ids, 0, "192.0.2.1");
        cache.failing.set(true);
        let during = client_key(&secrets(), &cache, &ids, 1, "192.0.2.1");
        assert_eq!(before, during);
        assert_eq!(during, client_key(&secrets(), &cache, &ids, 2, "192.0.2.1"));
        // Another service's secret, another key.
        let other = HashMap::from([(GRIP_KEY_SECRET.to_string(), b"other".to_vec())]);
        assert_ne!(before, client_key(&other, &cache, &ids, 0, "192.0.2.1"));
    }

    #[test]
    fn a_service_without_a_secret_keeps_a_random_daily_key_in_its_cache() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let none = HashMap::new();
        let a = client_key(&none, &cache, &ids, 0, "192.0.2.1");
        assert_eq!(a, client_key(&none, &cache, &ids, 1, "192.0.2.1"));
        assert_ne!(a, client_key(&secrets(), &cache, &ids, 1, "192.0.2.1"));
        cache.clock_ms.set(DAY_MS + 1);
        assert_ne!(a, client_key(&none, &cache, &ids, DAY_MS + 1, "192.0.2.1"));
    }

    #[test]
    fn a_client_holds_at_most_its_sockets_and_gets_one_back_when_one_closes() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let (me, other) = (
            client_key(&secrets(), &cache, &ids, 0, "192.0.2.1"),
            client_key(&secrets(), &cache, &ids, 0, "192.0.2.2"),
        );
        let tickets: Vec<SocketAdmission> = (0..5)
            .map(|_| take_socket(&cache, &limits(), &site("a"), &me, 60_000))
            .collect();
        use SocketAdmission::{Full, Ticket};
        assert_eq!(tickets, vec![Ticket(0), Ticket(1), Ticket(2), Full, Full]);
        // Other clients and other sites are unaffected.
        assert_eq!(
            take_socket(&cache, &limits(), &site("a"), &other, 60_000),
            Ticket(0)
        );
        assert_eq!(
            take_socket(&cache, &limits(), &site("b"), &me, 60_000),
            Ticket(0)
        );
        release_socket(&cache, &site("a"), &me, 1);
        cache.clock_ms.set(2);
        assert_eq!(
            take_socket(&cache, &limits(), &site("a"), &me, 60_000),
            Ticket(1)
        );
        // A ticket a vanished socket held lapses; a live one is kept by its heartbeats.
        cache.clock_ms.set(50_000);
        keep_socket(&cache, &site("a"), &me, 0, 60_000);
        cache.clock_ms.set(70_000);
        assert_eq!(
            take_socket(&cache, &limits(), &site("a"), &me, 60_000),
            Ticket(1)
        );
    }

    #[test]
    fn visits_and_api_reads_are_counted_per_window() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let me = client_key(&secrets(), &cache, &ids, 0, "192.0.2.1");
        let visits: Vec<Verdict> = (0..6)
            .map(|_| take_visit(&cache, &limits(), &site("a"), &me, 0))
            .collect();
        use Verdict::{Over, Within};
        assert_eq!(visits, vec![Within, Within, Within, Within, Over, Over]);
        cache.clock_ms.set(HOUR_MS);
        assert_eq!(
            take_visit(&cache, &limits(), &site("a"), &me, HOUR_MS),
            Within,
            "a new hour"
        );
        let reads = (0..7)
            .filter(|_| take_api_read(&cache, &limits(), &me, HOUR_MS) == Within)
            .count();
        assert_eq!(reads, 5);
        assert_eq!(api_retry_after_secs(HOUR_MS + 59_500), 1);
        assert_eq!(api_retry_after_secs(HOUR_MS), 60);
    }

    #[test]
    fn an_ipv6_client_is_one_client_across_its_64() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let key = |a: &str| client_key(&secrets(), &cache, &ids, 0, a);
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn a_cache_that_fails_applies_no_limit() {
        let (cache, ids) = (MemoryCache::default(), CountingIds::default());
        let me = client_key(&secrets(), &cache, &ids, 0, "192.0.2.1");
        cache.failing.set(true);
        assert_eq!(
            take_socket(&cache, &limits(), &site("a"), &me, 60_000),
            SocketAdmission::Unchecked
        );
        assert_eq!(
            take_visit(&cache, &limits(), &site("a"), &me, 0),
            Verdict::Unchecked
        );
        assert_eq!(take_api_read(&cache, &limits(), &me, 0), Verdict::Unchecked);
    }
}
