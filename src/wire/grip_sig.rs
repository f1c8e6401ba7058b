//! Telling Fanout's calls from forged ones: the `Grip-Sig` header. (The admin endpoints' bearer
//! token is `admin`'s.)
//!
//! Fanout signs every request it makes to the origin with a JWT. Checking that the header is
//! merely present would let anyone who can reach the service directly forge WebSocket events
//! (and so presence); this module verifies it:
//! - locally, Pushpin signs HS256 with the `sig_key` of its config (issuer `pushpin`);
//! - on Fastly, Fanout signs ES256 with Fastly's Fanout key (issuer `fastly:<service id>`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use sha2::Sha256;

/// Fastly's published public key for Fanout's Grip-Sig (ES256).
pub const FASTLY_FANOUT_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECKo5A1ebyFcnmVV8SE5On+8G81Jy
BjSvcrx4VLetWCjuDAmppTo3xM/zz763COTCgHfp/6lPdCyYjjqc+GM7sw==
-----END PUBLIC KEY-----";

/// How a Grip-Sig is checked.
#[derive(Clone)]
pub enum GripVerifier {
    Hs256 {
        key: Vec<u8>,
        issuer: String,
    },
    Es256 {
        key: VerifyingKey,
        issuer: String,
    },
    /// No usable key is configured: every call is refused (and the reason logged).
    Unconfigured(String),
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    Missing,
    Malformed(&'static str),
    WrongAlgorithm(String),
    BadSignature,
    Expired,
    WrongIssuer,
    NotConfigured(String),
}

impl std::fmt::Display for SigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigError::Missing => write!(f, "missing Grip-Sig"),
            SigError::Malformed(what) => write!(f, "malformed Grip-Sig: {what}"),
            SigError::WrongAlgorithm(alg) => write!(f, "Grip-Sig algorithm {alg:?} not accepted"),
            SigError::BadSignature => write!(f, "Grip-Sig signature does not verify"),
            SigError::Expired => write!(f, "Grip-Sig expired"),
            SigError::WrongIssuer => write!(f, "Grip-Sig issuer not accepted"),
            SigError::NotConfigured(why) => write!(f, "Grip-Sig cannot be verified: {why}"),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    iss: Option<String>,
}

impl GripVerifier {
    /// HS256 with a shared key (local Pushpin's `sig_key`).
    pub fn hs256(key: &[u8], issuer: &str) -> GripVerifier {
        GripVerifier::Hs256 {
            key: key.to_vec(),
            issuer: issuer.to_string(),
        }
    }

    /// ES256 with a PEM public key.
    pub fn es256_pem(pem: &str, issuer: &str) -> Result<GripVerifier, String> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| e.to_string())?;
        Ok(GripVerifier::Es256 {
            key,
            issuer: issuer.to_string(),
        })
    }

    /// Fastly Fanout's signature for service `service_id`.
    pub fn fastly(service_id: &str) -> Result<GripVerifier, String> {
        GripVerifier::es256_pem(FASTLY_FANOUT_PUBLIC_KEY, &format!("fastly:{service_id}"))
    }

    fn algorithm(&self) -> &'static str {
        match self {
            GripVerifier::Hs256 { .. } => "HS256",
            GripVerifier::Es256 { .. } => "ES256",
            GripVerifier::Unconfigured(_) => "",
        }
    }

    fn issuer(&self) -> &str {
        match self {
            GripVerifier::Hs256 { issuer, .. } | GripVerifier::Es256 { issuer, .. } => issuer,
            GripVerifier::Unconfigured(_) => "",
        }
    }

    /// Checks a `Grip-Sig` value: algorithm, signature, expiry (`exp` is required) and issuer.
    pub fn verify(&self, token: Option<&str>, now_secs: u64) -> Result<(), SigError> {
        if let GripVerifier::Unconfigured(why) = self {
            return Err(SigError::NotConfigured(why.clone()));
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(SigError::Missing)?;
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SigError::Malformed("not three dot-separated parts"));
        };
        let header: Header = decode_json(header_b64)?;
        if header.alg != self.algorithm() {
            return Err(SigError::WrongAlgorithm(
                header.alg.chars().take(16).collect(),
            ));
        }
        let signature =
            decode_base64(sig_b64).ok_or(SigError::Malformed("signature is not base64"))?;
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        self.check_signature(signed.as_bytes(), &signature)?;
        // Claims are read only once the signature holds.
        let claims: Claims = decode_json(claims_b64)?;
        match claims.exp {
            Some(exp) if exp > now_secs => {}
            Some(_) => return Err(SigError::Expired),
            None => return Err(SigError::Malformed("no exp claim")),
        }
        if claims.iss.as_deref() != Some(self.issuer()) {
            return Err(SigError::WrongIssuer);
        }
        Ok(())
    }

    fn check_signature(&self, signed: &[u8], signature: &[u8]) -> Result<(), SigError> {
        match self {
            GripVerifier::Hs256 { key, .. } => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).map_err(|_| SigError::BadSignature)?;
                mac.update(signed);
                // verify_slice compares in constant time.
                mac.verify_slice(signature)
                    .map_err(|_| SigError::BadSignature)
            }
            GripVerifier::Es256 { key, .. } => {
                let sig = Signature::from_slice(signature).map_err(|_| SigError::BadSignature)?;
                key.verify(signed, &sig).map_err(|_| SigError::BadSignature)
            }
            GripVerifier::Unconfigured(why) => Err(SigError::NotConfigured(why.clone())),
        }
    }
}

/// Base64 as JWTs should carry it (URL-safe, unpadded), or as some signers write it
/// (standard alphabet, padded): lenient in decoding, strict in verifying.
pub fn decode_base64(part: &str) -> Option<Vec<u8>> {
    let unpadded = part.trim_end_matches('=');
    if unpadded.contains('=') {
        return None;
    }
    let url_safe: String = unpadded
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(url_safe).ok()
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, SigError> {
    let bytes = decode_base64(part).ok_or(SigError::Malformed("part is not base64"))?;
    serde_json::from_slice(&bytes).map_err(|_| SigError::Malformed("part is not the expected JSON"))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use liveuser_testkit::jwt::hs256_token;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn es256_key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).expect("signing key")
    }

    fn es256_token(key: &SigningKey, iss: &str, exp: u64) -> String {
        let signed = format!(
            "{}.{}",
            b64(br#"{"alg":"ES256","typ":"JWT"}"#),
            b64(format!(r#"{{"iss":"{iss}","exp":{exp}}}"#).as_bytes())
        );
        let sig: Signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", b64(&sig.to_bytes()))
    }

    fn es256_verifier(issuer: &str) -> GripVerifier {
        let pem = es256_key()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        GripVerifier::es256_pem(&pem, issuer).expect("verifier")
    }

    #[test]
    fn hs256_accepts_a_valid_token() {
        let v = GripVerifier::hs256(b"k", "pushpin");
        assert_eq!(
            v.verify(Some(&hs256_token(b"k", "pushpin", 2000)), 1000),
            Ok(())
        );
    }

    #[test]
    fn hs256_refuses_wrong_key_expiry_issuer_and_absence() {
        let v = GripVerifier::hs256(b"k", "pushpin");
        assert_eq!(
            v.verify(Some(&hs256_token(b"other", "pushpin", 2000)), 1000),
            Err(SigError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(&hs256_token(b"k", "pushpin", 1000)), 1000),
            Err(SigError::Expired)
        );
        assert_eq!(
            v.verify(Some(&hs256_token(b"k", "someone", 2000)), 1000),
            Err(SigError::WrongIssuer)
        );
        assert_eq!(v.verify(None, 1000), Err(SigError::Missing));
        assert_eq!(v.verify(Some(""), 1000), Err(SigError::Missing));
    }

    #[test]
    fn tampered_claims_fail_the_signature() {
        let v = GripVerifier::hs256(b"k", "pushpin");
        let token = hs256_token(b"k", "pushpin", 2000);
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = b64(br#"{"iss":"pushpin","exp":99999999999}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(v.verify(Some(&forged), 1000), Err(SigError::BadSignature));
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        // An ES256 service must not accept HS256 (nor "none"), whatever the key.
        let v = es256_verifier("fastly:svc");
        assert!(matches!(
            v.verify(Some(&hs256_token(b"k", "fastly:svc", 2000)), 1000),
            Err(SigError::WrongAlgorithm(_))
        ));
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(br#"{"iss":"fastly:svc","exp":2000}"#)
        );
        assert!(matches!(
            v.verify(Some(&none), 1000),
            Err(SigError::WrongAlgorithm(_))
        ));
    }

    #[test]
    fn es256_accepts_valid_and_refuses_tampered_expired_and_foreign() {
        let v = es256_verifier("fastly:svc");
        let key = es256_key();
        assert_eq!(
            v.verify(Some(&es256_token(&key, "fastly:svc", 2000)), 1000),
            Ok(())
        );
        assert_eq!(
            v.verify(Some(&es256_token(&key, "fastly:svc", 900)), 1000),
            Err(SigError::Expired)
        );
        assert_eq!(
            v.verify(Some(&es256_token(&key, "fastly:other", 2000)), 1000),
            Err(SigError::WrongIssuer)
        );
        let other = SigningKey::from_slice(&[9u8; 32]).expect("key");
        assert_eq!(
            v.verify(Some(&es256_token(&other, "fastly:svc", 2000)), 1000),
            Err(SigError::BadSignature)
        );
        let mut token = es256_token(&key, "fastly:svc", 2000);
        token.pop();
        token.push('A');
        assert!(v.verify(Some(&token), 1000).is_err());
    }

    #[test]
    fn fastlys_published_key_parses() {
        let v = GripVerifier::fastly("0000000000000000000000").expect("Fastly key");
        assert_eq!(v.issuer(), "fastly:0000000000000000000000");
    }

    #[test]
    fn an_unconfigured_verifier_refuses_everything() {
        let v = GripVerifier::Unconfigured("no key".into());
        assert!(matches!(
            v.verify(Some(&hs256_token(b"k", "pushpin", 2000)), 1000),
            Err(SigError::NotConfigured(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let v = GripVerifier::hs256(b"k", "pushpin");
        for token in ["x", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(v.verify(Some(token), 0).is_err(), "{token}");
        }
    }

    #[test]
    fn signatures_in_standard_or_url_safe_base64_padded_or_not_are_accepted() {
        use base64::engine::general_purpose::STANDARD;
        let v = GripVerifier::hs256(b"k", "pushpin");
        let token = hs256_token(b"k", "pushpin", 2000);
        let (signed, sig) = token.rsplit_once('.').expect("three parts");
        let raw = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
        for variant in [
            format!("{signed}.{}", STANDARD.encode(&raw)),
            format!("{signed}.{}", STANDARD.encode(&raw).trim_end_matches('=')),
            format!("{signed}.{}=", URL_SAFE_NO_PAD.encode(&raw)),
        ] {
            assert_eq!(v.verify(Some(&variant), 1000), Ok(()), "{variant}");
        }
        // Lenient decoding, strict verifying: the signature still has to be right.
        let mut wrong = raw.clone();
        wrong[0] ^= 1;
        let forged = format!("{signed}.{}", STANDARD.encode(&wrong));
        assert_eq!(v.verify(Some(&forged), 1000), Err(SigError::BadSignature));
        assert!(matches!(
            v.verify(Some(&format!("{signed}.ab=c")), 1000),
            Err(SigError::Malformed(_))
        ));
    }
}
