//! A stream's session: what one held stream carries from call to call, as a socket keeps it in
//! Fanout's connection meta. The site, the random presence id and the windows it has keys in,
//! the page id, the totals flag, the socket ticket and whose it is (the client's daily keyed
//! hash, never its address), and the stream's own random id, signed (HMAC-SHA256) under a
//! [`KeyRing`]: the `session_key_a`/`_b` secret the config names, or while neither is set a key
//! derived from a secret the service has anyway (the publish token in production, the local
//! Grip key locally). The signature names its key, so a rotated key leaves sessions valid; a
//! session the service did not give is refused.
//!
//! It travels two ways, signed under two keys. Fanout carries it in the next link it calls while
//! it holds the stream ([`Session::to_link_token`], under the link key, in the path: the
//! browser never sees it), which is what keeps the presence. The browser gets it in the
//! stream's first event, under the session key, and can only end the presence with it (the
//! leave beacon): a browser's session is no link, and a link is no browser's session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::count::limits::ClientKey;
use crate::count::page;
use crate::count::presence::Lease;
use crate::platform::secrets::{hex_prefix, hmac_sha256, KeyRing};
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// What a stream's reader carries from call to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub site: SiteId,
    pub lease: Lease,
    pub totals: bool,
    pub ticket: Option<u32>,
    /// The client the ticket was taken for: Fanout's calls come from Fanout's address, so the
    /// ticket is kept under the key it was taken with.
    pub client: Option<ClientKey>,
    /// The stream's own random id (16 hex digits): its next links' paths are its own, so Fanout
    /// never merges two streams' calls, and a leave names the one stream it ends.
    pub stream: String,
}

/// The keys the browser's sessions are signed with and checked against, when the service has
/// a secret to make them from.
pub fn session_keys(services: &Services) -> Option<KeyRing> {
    KeyRing::load(
        services.secrets,
        services.config.session_key,
        b"liveuser sse session",
    )
}

/// The keys next links are signed with and checked against.
pub fn link_keys(services: &Services) -> Option<KeyRing> {
    KeyRing::load(
        services.secrets,
        services.config.session_key,
        b"liveuser sse link",
    )
}

/// `keys`, or 503: without a secret no session can be trusted.
pub fn required(keys: Option<KeyRing>) -> Result<KeyRing, HttpError> {
    keys.ok_or_else(|| {
        HttpError::Unavailable("SSE streams need the service's publish token secret".into())
    })
}

/// A new stream's random id.
pub fn new_stream_id(services: &Services) -> String {
    format!("{:016x}", services.ids.random_u64s()[0])
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(key).expect("a 32-byte key")
}

pub fn invalid_session() -> HttpError {
    HttpError::InvalidParameter {
        code: "invalid_session",
        message: "session must be one this service gave".into(),
    }
}

fn is_stream_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Session {
    /// [`Session::encode`], then `|`, the signing key's id, `.` and the signature (128 bits of
    /// HMAC, hex).
    pub fn sign(&self, keys: &KeyRing) -> String {
        let payload = self.encode();
        let (id, key) = keys.signing();
        let tag = hex_prefix(&hmac_sha256(key, &[payload.as_bytes()]), 16);
        format!("{payload}|{id}.{tag}")
    }

    /// A signed session, checked (in constant time) against the key it names, then parsed.
    pub fn verify(text: &str, keys: &KeyRing) -> Result<Session, HttpError> {
        let (payload, signature) = text.rsplit_once('|').ok_or_else(invalid_session)?;
        let (id, hex) = signature.split_once('.').ok_or_else(invalid_session)?;
        let mut id_chars = id.chars();
        let key = match (id_chars.next(), id_chars.next()) {
            (Some(id), None) => keys.verifying(id).ok_or_else(invalid_session)?,
            _ => return Err(invalid_session()),
        };
        let tag: Option<Vec<u8>> = (hex.len() == 32)
            .then(|| {
                (0..16)
                    .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
                    .collect()
            })
            .flatten();
        let tag = tag.ok_or_else(invalid_session)?;
        mac(key)
            .chain_update(payload.as_bytes())
            .verify_truncated_left(&tag)
            .map_err(|_| invalid_session())?;
        Session::parse(payload)
    }

    /// The signed session as one path segment of a next link (base64url, no padding).
    pub fn to_link_token(&self, keys: &KeyRing) -> String {
        URL_SAFE_NO_PAD.encode(self.sign(keys))
    }

    /// A next link's path segment, decoded and verified.
    pub fn from_link_token(token: &str, keys: &KeyRing) -> Result<Session, HttpError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid_session())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid_session())?;
        Session::verify(&text, keys)
    }

    /// `<site>|<presence id>|<windows>|<page id or ->|<0 or 1>|<ticket or ->|<client or ->|
    /// <stream id>|<country or ->`.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.site,
            self.lease.id,
            self.lease.windows_meta(),
            self.lease.page.as_deref().unwrap_or("-"),
            u8::from(self.totals),
            self.ticket.map_or("-".to_string(), |t| t.to_string()),
            self.client.as_ref().map_or("-", ClientKey::as_str),
            self.stream,
            self.lease.country.as_deref().unwrap_or("-"),
        )
    }

    pub fn parse(text: &str) -> Result<Session, HttpError> {
        let bad = invalid_session;
        let parts: Vec<&str> = text.split('|').collect();
        // Sessions given before countries were counted have no ninth part.
        let (&[site, id, windows, page, totals, ticket, client, stream], country) =
            (parts.get(..8).unwrap_or(&[]), parts.get(8))
        else {
            return Err(bad());
        };
        if parts.len() > 9 {
            return Err(bad());
        }
        let country = match country {
            None | Some(&"-") => None,
            Some(c) if crate::count::country::is_code(c) => Some(c.to_string()),
            Some(_) => return Err(bad()),
        };
        let site = SiteId::parse(site).map_err(|_| bad())?;
        let page = match page {
            "-" => None,
            p if page::is_page_id(p) => Some(p.to_string()),
            _ => return Err(bad()),
        };
        let lease = Lease::from_meta(id, windows)
            .ok_or_else(bad)?
            .on_page(page)
            .in_country(country);
        let totals = match totals {
            "0" => false,
            "1" => true,
            _ => return Err(bad()),
        };
        let ticket = match ticket {
            "-" => None,
            t => Some(t.parse().map_err(|_| bad())?),
        };
        let client = match client {
            "-" => None,
            c => Some(ClientKey::parse(c).ok_or_else(bad)?),
        };
        if !is_stream_id(stream) {
            return Err(bad());
        }
        Ok(Session {
            site,
            lease,
            totals,
            ticket,
            client,
            stream: stream.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::secrets::KeySlot;

    fn session() -> Session {
        Session {
            site: SiteId::parse("a.b-c").expect("site"),
            lease: Lease {
                id: "0123456789abcdef0123456789abcdef".into(),
                windows: vec![5, 7],
                page: Some("0123456789abcdef".into()),
                country: Some("NZ".into()),
            },
            totals: true,
            ticket: Some(3),
            client: ClientKey::parse("0123456789abcdef0123456789abcdef"),
            stream: "00000000000000ff".into(),
        }
    }

    fn ring(entries: &[(&str, &str)], signing: KeySlot) -> KeyRing {
        let secrets: std::collections::HashMap<String, Vec<u8>> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        KeyRing::load(&secrets, signing, b"test").expect("a ring")
    }

    fn keys() -> KeyRing {
        ring(&[("session_key_a", "seven")], KeySlot::A)
    }

    #[test]
    fn sessions_round_trip() {
        let session = session();
        assert_eq!(Session::parse(&session.encode()), Ok(session.clone()));
        // A session given before countries were counted has eight parts: no country.
        let encoded = session.encode();
        let (old, _) = encoded.rsplit_once('|').expect("nine parts");
        let mut before = session.clone();
        before.lease.country = None;
        assert_eq!(Session::parse(old), Ok(before));
        for bad in ["|nz", "|NZ|x"] {
            assert!(Session::parse(&format!("{old}{bad}")).is_err(), "{bad}");
        }
        let signed = session.sign(&keys());
        assert!(signed.contains("|a."), "{signed}");
        assert_eq!(Session::verify(&signed, &keys()), Ok(session.clone()));
        let other = ring(&[("session_key_a", "eight")], KeySlot::A);
        assert!(Session::verify(&signed, &other).is_err());
        for bad in [
            signed.replace("|a.", "|"),
            signed.replace("|a.", "|ab."),
            signed.replace("|a.", "|b."),
            signed.replace("|a.", "|."),
        ] {
            assert!(Session::verify(&bad, &keys()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rotation_leaves_what_the_old_key_signed_valid_until_its_slot_is_rewritten() {
        let session = session();
        let before = session.sign(&ring(&[("fanout_publish_token", "t")], KeySlot::A));
        let first = ring(
            &[("fanout_publish_token", "t"), ("session_key_a", "one")],
            KeySlot::A,
        );
        assert_eq!(Session::verify(&before, &first), Ok(session.clone()));
        let signed_a = session.sign(&first);
        let rotated = ring(
            &[
                ("fanout_publish_token", "t"),
                ("session_key_a", "one"),
                ("session_key_b", "two"),
            ],
            KeySlot::B,
        );
        assert!(session.sign(&rotated).contains("|b."));
        assert_eq!(Session::verify(&signed_a, &rotated), Ok(session.clone()));
        // The next rotation rewrites slot a: what it signed two keys ago is refused.
        let again = ring(
            &[
                ("fanout_publish_token", "t"),
                ("session_key_a", "three"),
                ("session_key_b", "two"),
            ],
            KeySlot::A,
        );
        assert!(Session::verify(&signed_a, &again).is_err());
    }

    #[test]
    fn a_link_token_is_one_path_segment_and_only_this_key_reads_it() {
        let session = session();
        let token = session.to_link_token(&keys());
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Session::from_link_token(&token, &keys()), Ok(session));
        for bad in ["", "!!", "aGVsbG8", &token[1..]] {
            assert_eq!(
                Session::from_link_token(bad, &keys()).map_err(|e| e.code()),
                Err("invalid_session"),
                "{bad}"
            );
        }
        let other = ring(&[("session_key_a", "eight")], KeySlot::A);
        assert!(Session::from_link_token(&token, &other).is_err());
    }

    #[test]
    fn a_stream_id_is_sixteen_hex_digits() {
        let mut s = session();
        for bad in ["", "00ff", "00000000000000FF", "0000000000000g00"] {
            s.stream = bad.into();
            assert!(Session::parse(&s.encode()).is_err(), "{bad}");
        }
    }
}
