//! Grip-Sig tokens as Pushpin makes them (HS256 JWTs): for the stacks' signed requests, for
//! forgeries in tests, and for the simulator's Fanout. The one minting function tests use.

/// An HS256 Grip-Sig as Pushpin makes them (for forging tests: with the wrong key it is a
/// forgery, with the stack's key it is what Pushpin would send).
pub fn hs256_token(key: &[u8], issuer: &str, exp: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{issuer}","exp":{exp}}}"#))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}
