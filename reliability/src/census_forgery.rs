//! Forged census requests: every way a caller without the service's key might try to make it
//! list a share (and so amplify one request into many list pages): a share changed after
//! signing, a changed or borrowed signature, another key, no signature, an expired request, and
//! correctly signed shares that are malformed. None may be accepted; genuine requests, the
//! control, all must be.

use std::collections::BTreeMap;
use std::time::Instant;

use liveuser_edge::count::census::{Share, CENSUS_PATH, MAX_SPLIT_BITS};
use liveuser_edge::wire::site::SiteId;
use liveuser_sim::rng::Rng;

/// The kinds of forgery, tried in turn.
pub const KINDS: &[&str] = &[
    "share changed after signing (site, window, shard, leaf or expiry)",
    "signature digit changed",
    "signature of another share",
    "signed with another key",
    "no signature, or an empty one",
    "expired",
    "signature cut short or extended",
    "signed by the service but malformed (shard not binary, deeper than its leaf, leaf past the deepest split)",
];

/// The time the requests are checked at.
const NOW_MS: u64 = 1_800_000_000_000;

#[derive(Debug, Clone)]
pub struct CensusForgeryFigure {
    pub forged: u64,
    pub accepted: u64,
    /// Tried and accepted, per kind.
    pub by_kind: Vec<(&'static str, u64, u64)>,
    /// Refusals by HTTP status.
    pub statuses: Vec<(u16, u64)>,
    /// Kinds refused with another status than the one their check gives (403 for a signature
    /// or expiry that does not hold, 400 for a signed but malformed share, or a missing part).
    pub misjudged: u64,
    pub genuine: u64,
    pub genuine_accepted: u64,
    pub seconds: f64,
}

impl CensusForgeryFigure {
    pub fn holds(&self) -> bool {
        self.accepted == 0 && self.genuine_accepted == self.genuine && self.misjudged == 0
    }
}

fn key(seed: u64) -> [u8; 32] {
    let rng = Rng::new(seed);
    let mut k = [0u8; 32];
    for chunk in k.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    k
}

/// A well-formed share, drawn at random.
fn share(rng: &Rng) -> Share {
    let leaf_bits = 3 + rng.below(MAX_SPLIT_BITS as u64 - 2) as usize;
    let depth = rng.below(leaf_bits as u64 + 1) as usize;
    Share {
        site: SiteId::parse(&format!("site-{}.example", rng.below(1_000))).expect("a valid site"),
        window: 60_000_000 + rng.below(1_000_000),
        shard: (0..depth)
            .map(|_| if rng.below(2) == 0 { '0' } else { '1' })
            .collect(),
        leaf_bits,
    }
}

/// The query of a request, as name–value pairs.
fn query(req: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn request(pairs: &[(String, String)]) -> http::Request<Vec<u8>> {
    let q: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    http::Request::builder()
        .method("GET")
        .uri(format!("http://localhost{CENSUS_PATH}?{}", q.join("&")))
        .body(Vec::new())
        .expect("a request")
}

fn set(pairs: &mut [(String, String)], name: &str, value: String) {
    if let Some(p) = pairs.iter_mut().find(|(n, _)| n == name) {
        p.1 = value;
    }
}

/// One forgery of kind `kind`.
fn forge(kind: usize, k: &[u8; 32], other: &[u8; 32], rng: &Rng) -> http::Request<Vec<u8>> {
    let exp = NOW_MS + 1 + rng.below(30_000);
    let genuine = share(rng);
    let mut pairs = query(&genuine.request(k, exp));
    let sig = pairs
        .iter()
        .find(|(n, _)| n == "sig")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match kind {
        0 => {
            match rng.below(5) {
                0 => set(
                    &mut pairs,
                    "site",
                    format!("victim-{}.example", rng.below(1000)),
                ),
                1 => set(&mut pairs, "window", (genuine.window + 1).to_string()),
                2 => set(&mut pairs, "shard", format!("{}0", genuine.shard)),
                3 => set(&mut pairs, "leaf", (genuine.leaf_bits + 1).to_string()),
                _ => set(&mut pairs, "exp", (exp + 3_600_000).to_string()),
            }
            request(&pairs)
        }
        1 => {
            let mut digits: Vec<char> = sig.chars().collect();
            if !digits.is_empty() {
                let i = rng.below(digits.len() as u64) as usize;
                digits[i] = if digits[i] == '0' { '1' } else { '0' };
            }
            set(&mut pairs, "sig", digits.into_iter().collect());
            request(&pairs)
        }
        2 => {
            let mut other = share(rng);
            while other == genuine {
                other = share(rng);
            }
            let donor = query(&other.request(k, exp));
            let donor_sig = donor
                .iter()
                .find(|(n, _)| n == "sig")
                .map(|(_, v)| v.clone());
            set(&mut pairs, "sig", donor_sig.unwrap_or_default());
            request(&pairs)
        }
        3 => genuine.request(other, exp),
        4 => {
            if rng.below(2) == 0 {
                set(&mut pairs, "sig", String::new());
            } else {
                pairs.retain(|(n, _)| n != "sig");
            }
            request(&pairs)
        }
        5 => genuine.request(k, NOW_MS - 1 - rng.below(1_000_000)),
        6 => {
            let cut = if rng.below(2) == 0 {
                // Cut short, but not to nothing (that is the kind above).
                sig[..1 + rng.below(sig.len() as u64 - 1) as usize].to_string()
            } else {
                format!("{sig}{}", &sig[..1 + rng.below(8) as usize])
            };
            set(&mut pairs, "sig", cut);
            request(&pairs)
        }
        _ => {
            let mut bad = genuine;
            match rng.below(3) {
                0 => bad.shard = format!("{}2", &bad.shard[..bad.shard.len().saturating_sub(1)]),
                1 => bad.shard = "1".repeat(bad.leaf_bits + 1),
                _ => bad.leaf_bits = MAX_SPLIT_BITS + 1 + rng.below(100) as usize,
            }
            bad.request(k, exp)
        }
    }
}

/// `n` forged census requests, spread evenly over the kinds, and `n / 10` genuine ones as
/// the control.
pub fn census_forgeries(n: u64, seed: u64) -> CensusForgeryFigure {
    let started = Instant::now();
    let (k, other) = (key(seed), key(seed ^ 0x5eed));
    let rng = Rng::new(seed);
    let mut tried = vec![(0u64, 0u64); KINDS.len()];
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut misjudged = 0;
    for i in 0..n {
        let kind = (i as usize) % KINDS.len();
        let req = forge(kind, &k, &other, &rng);
        tried[kind].0 += 1;
        match Share::verify(&req, &k, NOW_MS) {
            Ok(_) => tried[kind].1 += 1,
            Err(e) => {
                let status = e.status();
                *statuses.entry(status).or_default() += 1;
                // A missing signature is a missing part (400); a malformed share, 400; the
                // rest are refused on the signature or the expiry (403).
                let missing_sig = query(&req).iter().all(|(n, _)| n != "sig");
                let expected = if kind == 7 || (kind == 4 && missing_sig) {
                    400
                } else {
                    403
                };
                misjudged += u64::from(status != expected);
            }
        }
    }
    let genuine = (n / 10).max(1);
    let genuine_accepted = (0..genuine)
        .filter(|i| {
            let s = share(&rng);
            let req = s.request(&k, NOW_MS + 1 + i);
            Share::verify(&req, &k, NOW_MS).is_ok_and(|back| back == s)
        })
        .count() as u64;
    CensusForgeryFigure {
        forged: n,
        accepted: tried.iter().map(|t| t.1).sum(),
        by_kind: KINDS
            .iter()
            .zip(&tried)
            .map(|(k, (t, a))| (*k, *t, *a))
            .collect(),
        statuses: statuses.into_iter().collect(),
        misjudged,
        genuine,
        genuine_accepted,
        seconds: started.elapsed().as_secs_f64(),
    }
}
