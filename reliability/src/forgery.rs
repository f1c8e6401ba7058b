//! Forged Grip-Sig tokens: every way a caller without the key might try to pass as Fanout
//! (changed claims, changed or borrowed signatures, another key, `alg: none`, the algorithm
//! swapped, expired, another issuer, no expiry). None may be accepted; genuine tokens, the
//! control, all must be.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use liveuser_sim::rng::Rng;
use liveuser_testkit::jwt;

use crate::inputs::{Verifiers, HS256_KEY, ISSUER, NOW_SECS};

/// The kinds of forgery, each tried on both verifiers in turn.
pub const KINDS: &[&str] = &[
    "claims changed after signing",
    "signature bit flipped",
    "signature of another token",
    "signed with another key",
    "alg none, no signature",
    "algorithm swapped (HS256 keyed with the ES256 public key, or ES256 to HS256)",
    "expired",
    "another issuer",
    "no expiry",
    "extra or missing segments",
];

#[derive(Debug, Clone)]
pub struct ForgeryFigure {
    pub forged: u64,
    pub accepted: u64,
    /// Tried and accepted, per kind.
    pub by_kind: Vec<(&'static str, u64, u64)>,
    /// Refusals by reason.
    pub reasons: Vec<(String, u64)>,
    pub genuine: u64,
    pub genuine_accepted: u64,
    pub seconds: f64,
}

impl ForgeryFigure {
    pub fn holds(&self) -> bool {
        self.accepted == 0 && self.genuine_accepted == self.genuine
    }
}

/// The signed part and the signature of a token.
fn split(token: &str) -> (&str, &str) {
    token.rsplit_once('.').unwrap_or((token, ""))
}

fn flip_signature_bit(token: &str, rng: &Rng) -> String {
    let (signed, sig) = split(token);
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    if !bytes.is_empty() {
        let i = rng.below(bytes.len() as u64) as usize;
        bytes[i] ^= 1 << rng.below(8);
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// One forgery of kind `kind` for the ES256 verifier (`es256`) or the HS256 one.
fn forge(
    kind: usize,
    es256: bool,
    v: &Verifiers,
    rng: &Rng,
    other_es256: &p256::ecdsa::SigningKey,
) -> String {
    let exp = NOW_SECS + 60 + rng.below(100_000);
    let header: &[u8] = if es256 {
        br#"{"alg":"ES256","typ":"JWT"}"#
    } else {
        br#"{"alg":"HS256","typ":"JWT"}"#
    };
    let sign = |claims: &[u8]| {
        if es256 {
            jwt::sign_es256(&v.es256_key, header, claims)
        } else {
            jwt::sign_hs256(HS256_KEY, header, claims)
        }
    };
    match kind {
        0 => {
            let genuine = v.genuine(es256, NOW_SECS - 10);
            let (_, sig) = split(&genuine);
            let forged_claims = if rng.below(2) == 0 {
                jwt::claims(ISSUER, exp + 1_000_000)
            } else {
                jwt::claims("fastly:someone-else", exp)
            };
            format!("{}.{sig}", jwt::signing_input(header, &forged_claims))
        }
        1 => flip_signature_bit(&v.genuine(es256, exp), rng),
        2 => {
            let donor = v.genuine(es256, exp + 1);
            let (_, sig) = split(&donor);
            let claims = jwt::claims(ISSUER, exp + 2 + rng.below(1000));
            format!("{}.{sig}", jwt::signing_input(header, &claims))
        }
        3 => {
            let claims = jwt::claims(ISSUER, exp);
            if es256 {
                jwt::sign_es256(other_es256, header, &claims)
            } else {
                let key = format!("guess-{}", rng.next_u64());
                jwt::sign_hs256(key.as_bytes(), header, &claims)
            }
        }
        4 => format!(
            "{}.",
            jwt::signing_input(br#"{"alg":"none","typ":"JWT"}"#, &jwt::claims(ISSUER, exp))
        ),
        5 => {
            let claims = jwt::claims(ISSUER, exp);
            if es256 {
                // The public key is public: an HS256 token keyed with it.
                let (_, pem) = jwt::es256_key(7);
                jwt::sign_hs256(pem.as_bytes(), br#"{"alg":"HS256","typ":"JWT"}"#, &claims)
            } else {
                jwt::sign_es256(&v.es256_key, br#"{"alg":"ES256","typ":"JWT"}"#, &claims)
            }
        }
        6 => sign(&jwt::claims(ISSUER, NOW_SECS - rng.below(100_000))),
        7 => sign(&jwt::claims(
            &format!("fastly:other-{}", rng.below(1000)),
            exp,
        )),
        8 => sign(format!(r#"{{"iss":"{ISSUER}","n":{}}}"#, rng.below(1000)).as_bytes()),
        _ => {
            let genuine = v.genuine(es256, exp);
            match rng.below(3) {
                0 => format!("{genuine}.{}", split(&genuine).1),
                1 => split(&genuine).0.to_string(),
                _ => genuine.replacen('.', "", 1),
            }
        }
    }
}

/// `n` forgeries, spread evenly over the kinds and both verifiers, and `n / 10` genuine
/// tokens as the control.
pub fn forgeries(n: u64, seed: u64) -> ForgeryFigure {
    let started = Instant::now();
    let v = Verifiers::new();
    let (other_es256, _) = jwt::es256_key(seed ^ 0xdead_beef);
    let rng = Rng::new(seed);
    let mut tried = vec![(0u64, 0u64); KINDS.len()];
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..n {
        let kind = (i as usize) % KINDS.len();
        let es256 = (i / KINDS.len() as u64) % 2 == 1;
        let token = forge(kind, es256, &v, &rng, &other_es256);
        tried[kind].0 += 1;
        match v.verifier(es256).verify(Some(&token), NOW_SECS) {
            Ok(()) => tried[kind].1 += 1,
            Err(e) => {
                let reason = format!("{e:?}").split('(').next().unwrap_or("").to_string();
                *reasons.entry(reason).or_default() += 1;
            }
        }
    }
    let genuine = (n / 10).max(1);
    let genuine_accepted = (0..genuine)
        .filter(|i| {
            let es256 = i % 2 == 1;
            let token = v.genuine(es256, NOW_SECS + 1 + i);
            v.verifier(es256).verify(Some(&token), NOW_SECS).is_ok()
        })
        .count() as u64;
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    ForgeryFigure {
        forged: n,
        accepted: tried.iter().map(|t| t.1).sum(),
        by_kind: KINDS
            .iter()
            .zip(&tried)
            .map(|(k, (t, a))| (*k, *t, *a))
            .collect(),
        reasons,
        genuine,
        genuine_accepted,
        seconds: started.elapsed().as_secs_f64(),
    }
}
