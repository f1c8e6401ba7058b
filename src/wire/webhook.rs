//! A threshold webhook's delivery as its receiver reads it: the JSON body, and the signature
//! that proves it came from this service, in the scheme Stripe and GitHub made familiar.
//!
//! `LiveUser-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
//! hook's secret (the `whsec_…` string as shown once when the hook was added, its bytes as they
//! are). The timestamp is signed with the body, so a receiver that refuses old timestamps
//! refuses a replayed delivery; the delivery id in the body (also in `LiveUser-Delivery`) lets
//! it drop a repeat of one it already took (a retry whose first answer was lost).

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "liveuser-signature";
/// The event type, also in the body's `type`.
pub const EVENT_HEADER: &str = "liveuser-event";
/// The delivery id, also in the body's `id`: the same on every attempt of one delivery.
pub const DELIVERY_HEADER: &str = "liveuser-delivery";
/// How old a signature's timestamp [`verify`] takes by default (Stripe's tolerance).
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// Which way the count crossed the hook's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The count reached the threshold (`online.above`).
    Above,
    /// The count fell below the threshold minus the hysteresis (`online.below`).
    Below,
}

impl Direction {
    /// The event type the receiver sees.
    pub fn event(self) -> &'static str {
        match self {
            Direction::Above => "online.above",
            Direction::Below => "online.below",
        }
    }
}

/// One crossing, as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// Unique to the hook and the crossing: a receiver's key for dropping repeats.
    pub id: &'a str,
    pub direction: Direction,
    pub site: &'a str,
    pub hook: &'a str,
    pub threshold: u64,
    pub hysteresis: u64,
    /// The count that crossed.
    pub count: u64,
    /// The crossing's number for this hook (1, 2, …: odd ones are `online.above`).
    pub crossing: u64,
    /// When the count was taken, ISO 8601 UTC.
    pub at: &'a str,
}

/// The JSON body of `event`.
pub fn body(event: &Event) -> String {
    json!({
        "id": event.id,
        "type": event.direction.event(),
        "site": event.site,
        "hook": event.hook,
        "threshold": event.threshold,
        "hysteresis": event.hysteresis,
        "count": event.count,
        "crossing": event.crossing,
        "at": event.at,
    })
    .to_string()
}

fn mac(secret: &[u8], t_secs: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `LiveUser-Signature` value for `body` sent at `t_secs`.
pub fn signature(secret: &[u8], t_secs: u64, body: &[u8]) -> String {
    let digest = mac(secret, t_secs, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t_secs},v1={hex}")
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `t=` or no `v1=`, or one that is not a number or hex.
    Malformed,
    /// The timestamp is further from now than the tolerance.
    TooOld,
    /// No `v1` matches the body and timestamp under this secret.
    Mismatch,
}

/// Checks a `LiveUser-Signature` value as a receiver should: a timestamp within
/// `tolerance_secs` of `now_secs`, and a `v1` that matches (compared in constant time). A
/// header may carry several `v1` (a secret being rotated): any one that matches will do.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<u64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => signatures.push(hex_bytes(v).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_secs.abs_diff(t) > tolerance_secs {
        return Err(SignatureError::TooOld);
    }
    let matches = signatures
        .iter()
        .any(|s| mac(secret, t, body).verify_slice(s).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_0123456789abcdef";

    fn event() -> Event<'static> {
        Event {
            id: "hk_1.1",
            direction: Direction::Above,
            site: "shop",
            hook: "hk_1",
            threshold: 100,
            hysteresis: 10,
            count: 101,
            crossing: 1,
            at: "2026-12-02T05:00:00.500Z",
        }
    }

    #[test]
    fn the_body_names_the_event_the_site_and_the_crossing() {
        let body: serde_json::Value = serde_json::from_str(&body(&event())).expect("json");
        assert_eq!(body["type"], "online.above");
        assert_eq!(body["id"], "hk_1.1");
        assert_eq!(
            (body["threshold"].as_u64(), body["count"].as_u64()),
            (Some(100), Some(101))
        );
        assert_eq!(body["at"], "2026-12-02T05:00:00.500Z");
        assert_eq!(Direction::Below.event(), "online.below");
    }

    #[test]
    fn a_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // The value any HMAC-SHA256 tool gives (`printf '1700000000.{}' | openssl dgst
        // -sha256 -hmac key`), computed here from the definition.
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{}"),
            format!(
                "t=1700000000,v1={}",
                independent_hmac(b"key", b"1700000000.{}")
            )
        );
        let body = body(&event());
        let header = signature(SECRET, 1_700_000_000, body.as_bytes());
        assert_eq!(
            verify(SECRET, &header, body.as_bytes(), 1_700_000_100, 300),
            Ok(())
        );
    }

    /// HMAC-SHA256 from its definition (RFC 2104) over plain SHA-256, so the test does not
    /// check the code with itself.
    fn independent_hmac(key: &[u8], message: &[u8]) -> String {
        use sha2::Digest;
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = sha2::Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        let outer = sha2::Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        outer.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_changed_body_an_old_timestamp_or_another_secret_is_refused() {
        let body = body(&event());
        let header = signature(SECRET, 1_700_000_000, body.as_bytes());
        let now = 1_700_000_000;
        assert_eq!(
            verify(SECRET, &header, b"{\"count\":1}", now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec_other", &header, body.as_bytes(), now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, body.as_bytes(), now + 301, 300),
            Err(SignatureError::TooOld)
        );
        for bad in [
            "",
            "t=x,v1=00",
            "t=1700000000",
            "v1=00",
            "t=1700000000,v1=0g",
        ] {
            assert_eq!(
                verify(SECRET, bad, body.as_bytes(), now, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A second v1 (a rotated secret's) beside a wrong one still verifies.
        let both = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(SECRET, &both, body.as_bytes(), now, 300), Ok(()));
    }
}
