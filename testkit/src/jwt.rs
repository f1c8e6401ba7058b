//! Grip-Sig tokens as Pushpin and Fastly make them (HS256 and ES256 JWTs): for the stacks'
//! signed requests, for forgeries in tests and the reliability figures, and for the
//! simulator's Fanout. The one place tests mint tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// An HS256 Grip-Sig as Pushpin makes them (for forging tests: with the wrong key it is a
/// forgery, with the stack's key it is what Pushpin would send).
pub fn hs256_token(key: &[u8], issuer: &str, exp: u64) -> String {
    sign_hs256(key, br#"{"alg":"HS256","typ":"JWT"}"#, &claims(issuer, exp))
}

/// An ES256 Grip-Sig as Fanout makes them, signed with `key`.
pub fn es256_token(key: &p256::ecdsa::SigningKey, issuer: &str, exp: u64) -> String {
    sign_es256(key, br#"{"alg":"ES256","typ":"JWT"}"#, &claims(issuer, exp))
}

/// The claims Grip-Sig carries.
pub fn claims(issuer: &str, exp: u64) -> Vec<u8> {
    format!(r#"{{"iss":"{issuer}","exp":{exp}}}"#).into_bytes()
}

/// `header.claims` in base64url, the part a JWT signs.
pub fn signing_input(header: &[u8], claims: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// A JWT with any header and claims, HMAC-SHA256-signed with `key`.
pub fn sign_hs256(key: &[u8], header: &[u8], claims: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let signed = signing_input(header, claims);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A JWT with any header and claims, ECDSA P-256-signed with `key`.
pub fn sign_es256(key: &p256::ecdsa::SigningKey, header: &[u8], claims: &[u8]) -> String {
    use p256::ecdsa::signature::Signer;
    let signed = signing_input(header, claims);
    let signature: p256::ecdsa::Signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A P-256 key made from `seed` (repeatable), and its public half as PEM.
pub fn es256_key(seed: u64) -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes(),
        );
    }
    // A scalar must be nonzero and below the curve order; a high byte of 0x7f keeps it below.
    bytes[0] = 0x7f;
    let key = p256::ecdsa::SigningKey::from_slice(&bytes).expect("a valid scalar");
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("a PEM");
    (key, pem)
}
