//! A whole window counted, split over executions when one would be too slow or too large.
//!
//! A listing page holds a thousand keys and takes tens to hundreds of milliseconds; counting a
//! key takes a fraction of a microsecond of CPU. One execution can count a few thousand keys
//! well inside a second and Compute's limits, not a million. So a broadcast that expects more
//! than [`LEAF_KEYS`] readers (its last count, with room to grow) splits the window by shard:
//! the ids' leading bits, which `presence` writes into every key. The broadcast asks 2^3
//! requests to the service itself (through the `self` backend) to count one eighth each; each
//! of those, if its share is still too large, asks 2^4 more, and so on down to shares of about
//! [`LEAF_KEYS`] keys, each counted from one list page. Answers are summed on the way back.
//!
//! What this costs: one list page per leaf (leaves hold about 400 to 900 keys, so one page per
//! thousand readers, as one listing would), and a request per leaf and per inner node: a
//! million readers are 2,048 leaves, 136 inner nodes, three levels, each execution far inside
//! Compute's limits. 2^[`ROOT_FANOUT_BITS`] = 8 requests leave the broadcast's own execution,
//! which publishes too, and 16 an inner node (twice as many if every share has to be asked
//! again). One share that fails twice fails the count: a count is exact or not made.
//!
//! A census request carries its share and an expiry, signed with a key derived from the
//! service's secret, so nobody else can make the service list (and amplify) on their behalf.

use std::collections::BTreeMap;

use crate::count::country::CountryCounts;
use crate::count::tally::{self, Tally};
use crate::platform::kv::KvError;
use crate::platform::peers::PeerError;
use crate::platform::secrets::{constant_time_eq, derived_key, hex_prefix, hmac_sha256};
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::request::query_param;
use crate::wire::site::SiteId;

/// The path census requests are sent to.
pub const CENSUS_PATH: &str = "/_liveuser/census";

/// The most keys a leaf is meant to count by default (`Config::census_leaf_keys`): under a
/// list page, so it lists once, with room for a share that drew more than its even part of
/// the ids.
pub const LEAF_KEYS: u64 = 900;

/// Shares the broadcast's own execution splits into (as bits: 8 requests, leaving room in its
/// 32 backend requests, and in the 16 we allow ourselves, for its publish).
pub const ROOT_FANOUT_BITS: usize = 3;

/// Shares an inner node splits into (as bits: 16 requests).
pub const NODE_FANOUT_BITS: usize = 4;

/// The finest split: 2^14 leaves hold 15 million readers.
pub const MAX_SPLIT_BITS: usize = 14;

/// How long a census request is valid after it was made.
const REQUEST_LIFETIME_MS: u64 = 30_000;

/// How finely to split a window whose last count was `last`: the fewest leading bits that
/// leave each share at most `leaf_keys` of the count, with a tenth more for growth.
pub fn split_bits(last: Option<u64>, leaf_keys: u64) -> usize {
    let expected = last.unwrap_or(0).saturating_mul(11) / 10;
    (0..=MAX_SPLIT_BITS)
        .find(|bits| expected >> bits <= leaf_keys)
        .unwrap_or(MAX_SPLIT_BITS)
}

/// Why a census could not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CensusError {
    /// A listing failed.
    Kv(KvError),
    /// A share's request got no answer, or a bad one.
    Share(String),
}

impl std::fmt::Display for CensusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CensusError::Kv(e) => write!(f, "{e}"),
            CensusError::Share(e) => write!(f, "share: {e}"),
        }
    }
}

/// One share of one window to count, as a census request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub site: SiteId,
    pub window: u64,
    /// The ids' leading bits this share holds (binary digits; empty: every id).
    pub shard: String,
    /// How many leading bits a leaf's share has.
    pub leaf_bits: usize,
}

/// Counts `window` of `site`, split [`split_bits`] ways: from this execution alone
/// when that is 0 (or when the service has no secret to sign census requests with).
pub fn count(
    services: &Services,
    site: &SiteId,
    window: u64,
    last: Option<u64>,
) -> Result<Tally, CensusError> {
    // The key is read once: every share this execution asks for is signed with it.
    let key = census_key(services);
    let leaf_bits = match key {
        Some(_) => split_bits(last, u64::from(services.config.census_leaf_keys)),
        None => 0,
    };
    let share = Share {
        site: site.clone(),
        window,
        shard: String::new(),
        leaf_bits,
    };
    count_share(services, key.as_ref(), &share)
}

/// Counts one share: lists it when it is a leaf's, asks for its parts otherwise. A leaf's
/// share that turns out to hold more than a list page (the site grew past its last count, or
/// has none yet) is split further rather than listed on: one wasted page, not an execution
/// that outgrows Compute's limits.
/// (`key`: what census requests are signed with; `None` when the service has no secret, and
/// then nothing is split.)
fn count_share(
    services: &Services,
    key: Option<&[u8; 32]>,
    share: &Share,
) -> Result<Tally, CensusError> {
    let fanout = if share.shard.is_empty() {
        ROOT_FANOUT_BITS
    } else {
        NODE_FANOUT_BITS
    };
    if share.shard.len() >= share.leaf_bits {
        let splittable = key.is_some() && share.shard.len() < MAX_SPLIT_BITS;
        let max_pages = if splittable { 1 } else { u64::MAX };
        let (site, window) = (&share.site, share.window);
        match tally::tally_within(services.kv, site, window, &share.shard, max_pages) {
            Ok(Some(tally)) => return Ok(tally),
            Ok(None) => {
                let deeper = Share {
                    leaf_bits: (share.shard.len() + fanout).min(MAX_SPLIT_BITS),
                    ..share.clone()
                };
                return split(services, key, &deeper, fanout);
            }
            Err(e) => return Err(CensusError::Kv(e)),
        }
    }
    split(services, key, share, fanout)
}

/// Asks for the parts of `share` (2^`fanout` of them, or fewer to reach its leaves), and adds
/// up their answers.
fn split(
    services: &Services,
    key: Option<&[u8; 32]>,
    share: &Share,
    fanout: usize,
) -> Result<Tally, CensusError> {
    let bits = fanout.min(share.leaf_bits - share.shard.len());
    let key = key.ok_or_else(|| CensusError::Share("no census key".into()))?;
    let expires_ms = services.clock.now_ms() + REQUEST_LIFETIME_MS;
    let parts: Vec<Share> = (0..1u32 << bits)
        .map(|n| Share {
            shard: format!("{}{n:0bits$b}", share.shard),
            ..share.clone()
        })
        .collect();
    let requests = parts.iter().map(|p| p.request(key, expires_ms)).collect();
    let mut answers: Vec<Result<Tally, String>> = services
        .peers
        .send_all(requests)
        .into_iter()
        .map(read_answer)
        .collect();
    // A share whose request failed is asked once more (an execution on a busy host, a lost
    // connection): within the backend requests an execution may make (2 × 16 of 32).
    let failed: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].is_err())
        .collect();
    if !failed.is_empty() {
        let again = failed
            .iter()
            .map(|i| parts[*i].request(key, expires_ms))
            .collect();
        for (i, answer) in failed.iter().zip(services.peers.send_all(again)) {
            answers[*i] = read_answer(answer);
        }
    }
    let mut total = Tally::default();
    for answer in answers {
        total.add(answer.map_err(CensusError::Share)?);
    }
    Ok(total)
}

/// One share's answer, read.
fn read_answer(answer: Result<http::Response<Vec<u8>>, PeerError>) -> Result<Tally, String> {
    let resp = answer.map_err(|PeerError(e)| e)?;
    if resp.status() != 200 {
        let body = String::from_utf8_lossy(resp.body());
        return Err(format!(
            "status {}: {}",
            resp.status().as_u16(),
            body.chars().take(200).collect::<String>()
        ));
    }
    decode(resp.body())
}

/// Answers a census request: checks its signature and expiry, counts its share (asking for
/// parts in turn if it is not a leaf's), and replies with the tally as JSON.
pub fn answer(services: &Services, req: &http::Request<Vec<u8>>) -> Result<String, HttpError> {
    let key = census_key(services).ok_or_else(|| {
        HttpError::Unavailable("census requests need the service's secret".into())
    })?;
    let share = Share::verify(req, &key, services.clock.now_ms())?;
    let tally = count_share(services, Some(&key), &share)
        .map_err(|e| HttpError::Unavailable(format!("census of shard {:?}: {e}", share.shard)))?;
    Ok(encode(&tally))
}

impl Share {
    fn signed_part(&self, expires_ms: u64) -> String {
        format!(
            "site={}&window={}&shard={}&leaf={}&exp={expires_ms}",
            self.site, self.window, self.shard, self.leaf_bits
        )
    }

    /// A GET of [`CENSUS_PATH`] for this share, valid until `expires_ms`.
    pub fn request(&self, key: &[u8; 32], expires_ms: u64) -> http::Request<Vec<u8>> {
        let query = self.signed_part(expires_ms);
        let sig = sign(key, &query);
        http::Request::builder()
            .method("GET")
            .uri(format!("http://localhost{CENSUS_PATH}?{query}&sig={sig}"))
            .body(Vec::new())
            .expect("a valid census request")
    }

    /// The share a census request names, if its signature holds and it has not expired.
    pub fn verify(
        req: &http::Request<Vec<u8>>,
        key: &[u8; 32],
        now_ms: u64,
    ) -> Result<Share, HttpError> {
        let param = |name: &str| {
            query_param(req, name)
                .ok_or_else(|| HttpError::BadRequest(format!("census: no {name}")))
        };
        let number = |name: &str| {
            param(name)?
                .parse::<u64>()
                .map_err(|_| HttpError::BadRequest(format!("census: {name} is not a number")))
        };
        let site = SiteId::parse(&param("site")?).map_err(HttpError::BadSiteId)?;
        let shard = param("shard")?;
        let leaf_bits = number("leaf")? as usize;
        let share = Share {
            site,
            window: number("window")?,
            shard,
            leaf_bits,
        };
        let expires_ms = number("exp")?;
        let sig = param("sig")?;
        let expected = sign(key, &share.signed_part(expires_ms));
        if !constant_time_eq(sig.as_bytes(), expected.as_bytes()) {
            return Err(HttpError::NotSigned {
                reason: "census request not signed by this service".into(),
            });
        }
        if expires_ms < now_ms {
            return Err(HttpError::NotSigned {
                reason: "census request expired".into(),
            });
        }
        let binary = share.shard.bytes().all(|b| b == b'0' || b == b'1');
        if !binary || share.leaf_bits > MAX_SPLIT_BITS || share.shard.len() > share.leaf_bits {
            return Err(HttpError::BadRequest("census: malformed share".into()));
        }
        Ok(share)
    }
}

/// The key census requests are signed with, derived from the service's publish token or its
/// Grip-Sig key: `None` when it has neither (the count then stays in one execution).
pub fn census_key(services: &Services) -> Option<[u8; 32]> {
    derived_key(services.secrets, b"liveuser census")
}

/// 128 bits of HMAC-SHA256 over `text`, in hex.
fn sign(key: &[u8; 32], text: &str) -> String {
    hex_prefix(&hmac_sha256(key, &[text.as_bytes()]), 16)
}

/// A tally as a census answer carries it (serialized from the tally itself: a leaf answers
/// every count, and building a JSON tree first would cost an allocation per page and country).
pub fn encode(tally: &Tally) -> String {
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        live: u64,
        keys: u64,
        lists: u64,
        pages: &'a BTreeMap<String, u64>,
        countries: String,
    }
    serde_json::to_string(&Answer {
        live: tally.live,
        keys: tally.keys,
        lists: tally.pages_listed,
        pages: &tally.pages,
        countries: tally.countries.encode(),
    })
    .unwrap_or_default()
}

/// A census answer read back.
pub fn decode(body: &[u8]) -> Result<Tally, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        live: u64,
        keys: u64,
        lists: u64,
        pages: BTreeMap<String, u64>,
        /// `US:3,DE:2`; absent from the answers of a service from before countries were
        /// counted.
        #[serde(default)]
        countries: String,
    }
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("unreadable census answer: {e}"))?;
    Ok(Tally {
        live: a.live,
        keys: a.keys,
        pages_listed: a.lists,
        pages: a.pages,
        countries: CountryCounts::decode(&a.countries)
            .ok_or_else(|| "unreadable census answer: bad countries".to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::presence::{join_on, new_id_from};
    use crate::platform::kv::CountingKv;
    use crate::platform::testing::TestServices;
    use std::cell::Cell;

    thread_local! {
        static ANSWERED: Cell<u32> = const { Cell::new(0) };
    }

    /// The census endpoint as the router serves it, counting the executions it answers.
    fn endpoint(services: &Services, req: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        ANSWERED.with(|a| a.set(a.get() + 1));
        match answer(services, req) {
            Ok(body) => http::Response::new(body.into_bytes()),
            Err(e) => crate::wire::response::error(&e),
        }
    }

    fn site() -> SiteId {
        SiteId::parse("big").expect("site")
    }

    /// `readers` joined at 1 s, a third of them on one page.
    fn with_readers(readers: u64) -> TestServices {
        let t = TestServices::new();
        t.set_time(1_000);
        t.peer_handler.set(Some(endpoint));
        for n in 0..readers {
            let id = new_id_from([n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n]);
            let page = (n % 3 == 0).then(|| "0123456789abcdef".to_string());
            join_on(&t.kv, &t.config, &site(), id, page, 1_000).expect("join");
        }
        ANSWERED.with(|a| a.set(0));
        t
    }

    fn split_bits_default(last: Option<u64>) -> usize {
        split_bits(last, LEAF_KEYS)
    }

    #[test]
    fn splits_grow_with_the_last_count_and_leaves_stay_under_a_list_page() {
        assert_eq!(split_bits_default(None), 0);
        assert_eq!(split_bits_default(Some(800)), 0);
        assert_eq!(split_bits_default(Some(20_000)), 5);
        assert_eq!(split_bits_default(Some(100_000)), 7);
        assert_eq!(split_bits_default(Some(1_000_000)), 11);
        for last in [1_000u64, 20_000, 100_000, 1_000_000, 10_000_000] {
            let leaves = 1u64 << split_bits_default(Some(last));
            assert!(last * 11 / 10 / leaves <= LEAF_KEYS, "{last}");
            assert!(
                last * 11 / 10 / leaves > LEAF_KEYS / 2,
                "{last}: not split too finely"
            );
        }
        assert_eq!(split_bits_default(Some(u64::MAX)), MAX_SPLIT_BITS);
    }

    #[test]
    fn a_split_count_adds_up_to_the_whole_from_one_list_page_a_leaf() {
        let t = with_readers(3_000);
        let whole = tally::tally(&t.kv, &site(), 0, "").expect("one listing");
        assert_eq!((whole.live, whole.pages_listed), (3_000, 3));
        // Last counted at 3,000: 4 shares of about 750 keys.
        let split = count(&t.services(), &site(), 0, Some(3_000)).expect("split");
        assert_eq!(
            split,
            Tally {
                pages_listed: 4,
                ..whole.clone()
            }
        );
        assert_eq!(ANSWERED.with(Cell::get), 4);
        // Last counted at 100,000: 8 requests, each asking 16 leaves.
        ANSWERED.with(|a| a.set(0));
        let deep = count(&t.services(), &site(), 0, Some(100_000)).expect("deeper");
        assert_eq!((deep.live, deep.pages), (whole.live, whole.pages));
        assert_eq!(ANSWERED.with(Cell::get), 8 + 128);
        assert_eq!(deep.pages_listed, 128);
    }

    #[test]
    fn a_share_larger_than_its_last_count_said_splits_itself() {
        let t = with_readers(3_000);
        // No last count: the broadcast's own execution lists a page, finds more, and splits.
        let tally = count(&t.services(), &site(), 0, None).expect("split on the way");
        assert_eq!(tally.live, 3_000);
        assert_eq!(ANSWERED.with(Cell::get), 8);
        assert_eq!(tally.pages_listed, 8, "the wasted page is not a share's");
        // A last count of 1: the same.
        ANSWERED.with(|a| a.set(0));
        let tally = count(&t.services(), &site(), 0, Some(1)).expect("split on the way");
        assert_eq!((tally.live, ANSWERED.with(Cell::get)), (3_000, 8));
    }

    #[test]
    fn no_execution_sends_more_than_sixteen_requests() {
        assert_eq!(1 << ROOT_FANOUT_BITS, 8);
        assert_eq!(1 << NODE_FANOUT_BITS, 16);
    }

    thread_local! {
        static ASKED: std::cell::RefCell<std::collections::HashSet<String>> =
            std::cell::RefCell::new(std::collections::HashSet::new());
    }

    /// The endpoint, failing the first request for each share (asked again, it answers).
    fn flaky(services: &Services, req: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let shard = query_param(req, "shard").unwrap_or_default();
        if ASKED.with(|a| a.borrow_mut().insert(shard)) {
            let mut down = http::Response::new(b"busy".to_vec());
            *down.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            return down;
        }
        endpoint(services, req)
    }

    #[test]
    fn a_share_whose_request_failed_is_asked_once_more() {
        let t = with_readers(2_000);
        t.peer_handler.set(Some(flaky));
        let tally = count(&t.services(), &site(), 0, Some(2_000)).expect("asked again");
        assert_eq!(tally.live, 2_000);
    }

    #[test]
    fn a_failed_share_fails_the_count_rather_than_undercount() {
        let t = with_readers(100);
        t.peer_handler.set(None);
        let err = count(&t.services(), &site(), 0, Some(50_000)).expect_err("no peers");
        assert!(matches!(err, CensusError::Share(_)), "{err}");
    }

    #[test]
    fn only_signed_live_requests_are_answered_and_bad_ones_list_nothing() {
        let t = with_readers(10);
        let services = t.services();
        let key = census_key(&services).expect("a key from the Grip key");
        let share = Share {
            site: site(),
            window: 0,
            shard: "1".into(),
            leaf_bits: 1,
        };
        let good = share.request(&key, 5_000);
        let answered = answer(&services, &good).expect("signed");
        assert!(decode(answered.as_bytes()).expect("tally").live > 0);
        let kv = CountingKv::new(&t.kv);
        let counting = Services {
            kv: &kv,
            ..services
        };
        let forged = share.request(&[7; 32], 5_000);
        let err = answer(&counting, &forged).expect_err("forged");
        assert_eq!(err.status(), 403);
        let tampered = http::Request::builder()
            .uri(good.uri().to_string().replace("shard=1", "shard=0"))
            .body(Vec::new())
            .expect("request");
        assert_eq!(
            answer(&counting, &tampered).expect_err("tampered").status(),
            403
        );
        t.set_time(6_000);
        let err = answer(&t.services(), &good).expect_err("expired");
        assert_eq!(err.status(), 403);
        let malformed = Share {
            shard: "2".into(),
            ..share.clone()
        };
        let err = answer(&t.services(), &malformed.request(&key, 10_000)).expect_err("bad");
        assert_eq!(err.status(), 400);
        let missing = http::Request::builder()
            .uri(CENSUS_PATH)
            .body(Vec::new())
            .expect("request");
        assert_eq!(
            answer(&counting, &missing).expect_err("empty").status(),
            400
        );
        assert_eq!(kv.counts().list, 0);
    }

    #[test]
    fn without_a_secret_the_count_stays_in_one_execution() {
        let mut t = with_readers(50);
        t.secrets.clear();
        let tally = count(&t.services(), &site(), 0, Some(1_000_000)).expect("count");
        assert_eq!((tally.live, tally.pages_listed), (50, 1));
        assert_eq!(ANSWERED.with(Cell::get), 0);
    }

    #[test]
    fn answers_round_trip() {
        let tally = Tally {
            live: 3,
            keys: 4,
            pages_listed: 1,
            pages: BTreeMap::from([("0123456789abcdef".to_string(), 2)]),
            countries: CountryCounts::from([("DE", 1)]),
        };
        assert_eq!(decode(encode(&tally).as_bytes()), Ok(tally));
        assert!(decode(b"{").is_err());
    }
}
