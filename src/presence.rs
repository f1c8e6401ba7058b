//! Who is online: one KV key per live connection and heartbeat, with the expiry in its name.
//!
//! Key: `presence/<site>/<presence id>/<expiry ms>`, written with a KV TTL to match.
//!
//! Why the expiry is in the name: production KV may keep (and list) an expired key for up to a
//! day, so the count must not depend on expired keys vanishing. Counting lists the site's keys
//! and counts the distinct presence ids that have at least one key whose expiry is still ahead.
//!
//! Why a new key per heartbeat instead of rewriting one: a listing shows names only, so the
//! expiry must be readable from the name. Each heartbeat is one KV write. The expiries a
//! connection still has alive are remembered in connection meta (the [`Lease`]), so a close
//! deletes exactly those keys, without a listing. Heartbeats faster than half an interval write
//! nothing, which bounds both a client's write rate and how many keys it can have alive.

use crate::config::Config;
use crate::kv::{list_all, KvError, KvStore, WriteMode};
use crate::site::SiteId;

/// Prefix of every presence key.
pub const PREFIX: &str = "presence/";

/// A connection's presence: its random id and the expiries of its keys that may be alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub expiries_ms: Vec<u64>,
}

impl Lease {
    /// The lease as stored in connection meta: expiries joined by commas.
    pub fn expiries_meta(&self) -> String {
        self.expiries_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads a lease back from meta. Ids are checked to be short lowercase hex, as
    /// [`new_id_from`] makes them; anything else is refused (`None`).
    pub fn from_meta(id: &str, expiries: &str) -> Option<Lease> {
        if !is_presence_id(id) {
            return None;
        }
        let expiries_ms = expiries
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        Some(Lease {
            id: id.to_string(),
            expiries_ms,
        })
    }

    fn newest_expiry(&self) -> Option<u64> {
        self.expiries_ms.iter().copied().max()
    }
}

/// A presence id from 128 random bits: 32 lowercase hex characters.
pub fn new_id_from(random: [u64; 2]) -> String {
    format!("{:016x}{:016x}", random[0], random[1])
}

fn is_presence_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The listing prefix of one site's presence keys.
pub fn site_prefix(site: &SiteId) -> String {
    format!("{PREFIX}{site}/")
}

/// The key of one heartbeat of one connection.
pub fn key(site: &SiteId, id: &str, expiry_ms: u64) -> String {
    format!("{}{id}/{expiry_ms}", site_prefix(site))
}

/// Registers a new connection: one KV write.
pub fn join(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    id: String,
    now_ms: u64,
) -> Result<Lease, KvError> {
    let expiry = now_ms + u64::from(config.presence_ttl_secs) * 1000;
    write(kv, config, site, &id, expiry)?;
    Ok(Lease {
        id,
        expiries_ms: vec![expiry],
    })
}

/// Extends a connection's presence on a heartbeat: at most one KV write, none when the newest
/// key was written less than half an interval ago. Returns the updated lease (expired
/// expiries dropped) and whether anything was written.
pub fn refresh(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    lease: &Lease,
    now_ms: u64,
) -> Result<(Lease, bool), KvError> {
    let ttl_ms = u64::from(config.presence_ttl_secs) * 1000;
    let half_interval_ms = u64::from(config.heartbeat_interval_secs) * 500;
    let mut updated = Lease {
        id: lease.id.clone(),
        expiries_ms: lease
            .expiries_ms
            .iter()
            .copied()
            .filter(|e| *e > now_ms)
            .collect(),
    };
    let fresh_enough = lease
        .newest_expiry()
        .is_some_and(|newest| newest > now_ms && newest + half_interval_ms > now_ms + ttl_ms);
    if fresh_enough {
        return Ok((updated, false));
    }
    let expiry = now_ms + ttl_ms;
    write(kv, config, site, &lease.id, expiry)?;
    updated.expiries_ms.push(expiry);
    Ok((updated, true))
}

/// Removes a connection at once: deletes every key of its lease (no listing). Keys already
/// past their expiry are deleted too, so production does not keep them for a day.
pub fn leave(kv: &dyn KvStore, site: &SiteId, lease: &Lease) -> Result<(), KvError> {
    let mut first_error = None;
    for expiry in &lease.expiries_ms {
        if let Err(e) = kv.delete(&key(site, &lease.id, *expiry)) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The number of distinct connections with a key that has not expired. Lists the site's keys
/// (every page): callers cache the result.
pub fn count(kv: &dyn KvStore, site: &SiteId, now_ms: u64) -> Result<u64, KvError> {
    let prefix = site_prefix(site);
    let keys = list_all(kv, &prefix)?;
    let mut live: Vec<&str> = keys
        .iter()
        .filter_map(|k| parse_key(k.strip_prefix(&prefix)?))
        .filter(|(_, expiry)| *expiry > now_ms)
        .map(|(id, _)| id)
        .collect();
    live.sort_unstable();
    live.dedup();
    Ok(live.len() as u64)
}

/// Splits `<id>/<expiry>`; foreign or malformed keys are skipped.
fn parse_key(rest: &str) -> Option<(&str, u64)> {
    let (id, expiry) = rest.split_once('/')?;
    Some((id, expiry.parse().ok()?))
}

fn write(
    kv: &dyn KvStore,
    config: &Config,
    site: &SiteId,
    id: &str,
    expiry_ms: u64,
) -> Result<(), KvError> {
    // The key outlives its expiry by a second at most (KV TTLs are whole seconds); counting
    // uses the expiry in the name, so that second never counts.
    kv.insert(
        &key(site, id, expiry_ms),
        b"",
        Some(config.presence_ttl_secs + 1),
        WriteMode::Overwrite,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::CountingKv;
    use crate::testing::MemoryKv;

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).expect("site")
    }

    fn config() -> Config {
        Config {
            heartbeat_interval_secs: 30,
            presence_ttl_secs: 60,
            ..Config::default()
        }
    }

    fn id(n: u64) -> String {
        new_id_from([n, n])
    }

    #[test]
    fn join_writes_one_key_and_counts() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let lease = join(&kv, &config(), &site("a"), id(1), 1_000).expect("join");
        assert_eq!(lease.expiries_ms, vec![61_000]);
        assert_eq!(kv.counts().insert, 1);
        assert_eq!(count(&kv, &site("a"), 1_000), Ok(1));
        assert_eq!(count(&kv, &site("b"), 1_000), Ok(0));
    }

    #[test]
    fn each_connection_counts_once_however_many_keys_it_has() {
        let store = MemoryKv::default();
        let cfg = config();
        let lease = join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        let (lease, wrote) = refresh(&store, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        assert!(wrote);
        assert_eq!(lease.expiries_ms, vec![60_000, 90_000]);
        join(&store, &cfg, &site("a"), id(2), 0).expect("join");
        assert_eq!(count(&store, &site("a"), 30_000), Ok(2));
    }

    #[test]
    fn a_heartbeat_is_at_most_one_write_and_spam_writes_nothing() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        let mut lease = join(&kv, &cfg, &site("a"), id(1), 0).expect("join");
        for t in [1_000, 5_000, 14_000] {
            let (l, wrote) = refresh(&kv, &cfg, &site("a"), &lease, t).expect("refresh");
            assert!(!wrote, "at {t} ms");
            lease = l;
        }
        let (lease, wrote) = refresh(&kv, &cfg, &site("a"), &lease, 15_000).expect("refresh");
        assert!(wrote);
        assert_eq!(kv.counts().insert, 2);
        // Lived expiries are dropped from the lease as time passes.
        let (lease, _) = refresh(&kv, &cfg, &site("a"), &lease, 61_000).expect("refresh");
        assert_eq!(lease.expiries_ms, vec![75_000, 121_000]);
    }

    #[test]
    fn a_vanished_connection_stops_counting_at_its_expiry_even_if_the_key_lingers() {
        // MemoryKv never drops expired keys, as production may not for hours.
        let store = MemoryKv::default();
        let cfg = config();
        join(&store, &cfg, &site("a"), id(1), 0).expect("join");
        assert_eq!(count(&store, &site("a"), 59_999), Ok(1));
        assert_eq!(count(&store, &site("a"), 60_000), Ok(0));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn leave_deletes_every_key_of_the_lease_without_listing() {
        let store = MemoryKv::default();
        let kv = CountingKv::new(&store);
        let cfg = config();
        let lease = join(&kv, &cfg, &site("a"), id(1), 0).expect("join");
        let (lease, _) = refresh(&kv, &cfg, &site("a"), &lease, 30_000).expect("refresh");
        join(&kv, &cfg, &site("a"), id(2), 0).expect("join");
        leave(&kv, &site("a"), &lease).expect("leave");
        assert_eq!(kv.counts().list, 0);
        assert_eq!(kv.counts().delete, 2);
        assert_eq!(count(&store, &site("a"), 30_000), Ok(1));
    }

    #[test]
    fn counting_follows_every_page_and_skips_foreign_keys() {
        let store = MemoryKv::with_page_size(3);
        let cfg = config();
        for n in 0..10 {
            join(&store, &cfg, &site("a"), id(n), 0).expect("join");
        }
        store
            .insert("presence/a/garbage", b"", None, WriteMode::Overwrite)
            .expect("insert");
        let kv = CountingKv::new(&store);
        assert_eq!(count(&kv, &site("a"), 1), Ok(10));
        assert_eq!(kv.counts().list, 4);
    }

    #[test]
    fn sites_sharing_a_prefix_do_not_mix() {
        let store = MemoryKv::default();
        join(&store, &config(), &site("ab"), id(1), 0).expect("join");
        assert_eq!(count(&store, &site("a"), 0), Ok(0));
    }

    #[test]
    fn leases_round_trip_through_meta_and_refuse_forged_ids() {
        let lease = Lease {
            id: id(7),
            expiries_ms: vec![1, 2],
        };
        assert_eq!(
            Lease::from_meta(&lease.id, &lease.expiries_meta()),
            Some(lease.clone())
        );
        assert_eq!(
            Lease::from_meta(&lease.id, ""),
            Some(Lease {
                id: lease.id.clone(),
                expiries_ms: vec![]
            })
        );
        assert_eq!(Lease::from_meta("../x", "1"), None);
        assert_eq!(Lease::from_meta(&lease.id, "1,x"), None);
    }
}
