//! A stream's session: what one held stream carries from call to call, as a socket keeps it in
//! Fanout's connection meta. The site, the random presence id and the windows it has keys in,
//! the page id, the totals flag, the socket ticket and whose it is (the client's daily keyed
//! hash, never its address), and the stream's own random id, signed
//! (HMAC-SHA256) with a key derived from a secret the service has anyway (the publish token in
//! production, the local Grip key locally): a session the service did not give is refused.
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
use crate::platform::secrets::{derived_key, hex_prefix, hmac_sha256};
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

/// The key the browser's sessions are signed with, when the service has a secret to derive it
/// from.
pub fn session_key(services: &Services) -> Option<[u8; 32]> {
    derived_key(services.secrets, b"liveuser sse session")
}

/// The key next links are signed with.
pub fn link_key(services: &Services) -> Option<[u8; 32]> {
    derived_key(services.secrets, b"liveuser sse link")
}

/// `key`, or 503: without a secret no session can be trusted.
pub fn required(key: Option<[u8; 32]>) -> Result<[u8; 32], HttpError> {
    key.ok_or_else(|| {
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
    /// [`Session::encode`], then `|` and its signature (128 bits of HMAC, hex).
    pub fn sign(&self, key: &[u8; 32]) -> String {
        let payload = self.encode();
        let tag = hex_prefix(&hmac_sha256(key, &[payload.as_bytes()]), 16);
        format!("{payload}|{tag}")
    }

    /// A signed session, checked (in constant time) against `key`, then parsed.
    pub fn verify(text: &str, key: &[u8; 32]) -> Result<Session, HttpError> {
        let (payload, hex) = text.rsplit_once('|').ok_or_else(invalid_session)?;
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
    pub fn to_link_token(&self, key: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(self.sign(key))
    }

    /// A next link's path segment, decoded and verified.
    pub fn from_link_token(token: &str, key: &[u8; 32]) -> Result<Session, HttpError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid_session())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid_session())?;
        Session::verify(&text, key)
    }

    /// `<site>|<presence id>|<windows>|<page id or ->|<0 or 1>|<ticket or ->|<client or ->|
    /// <stream id>`.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.site,
            self.lease.id,
            self.lease.windows_meta(),
            self.lease.page.as_deref().unwrap_or("-"),
            u8::from(self.totals),
            self.ticket.map_or("-".to_string(), |t| t.to_string()),
            self.client.as_ref().map_or("-", ClientKey::as_str),
            self.stream,
        )
    }

    pub fn parse(text: &str) -> Result<Session, HttpError> {
        let bad = invalid_session;
        let parts: Vec<&str> = text.split('|').collect();
        let [site, id, windows, page, totals, ticket, client, stream] = parts[..] else {
            return Err(bad());
        };
        let site = SiteId::parse(site).map_err(|_| bad())?;
        let page = match page {
            "-" => None,
            p if page::is_page_id(p) => Some(p.to_string()),
            _ => return Err(bad()),
        };
        let lease = Lease::from_meta(id, windows).ok_or_else(bad)?.on_page(page);
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

    fn session() -> Session {
        Session {
            site: SiteId::parse("a.b-c").expect("site"),
            lease: Lease {
                id: "0123456789abcdef0123456789abcdef".into(),
                windows: vec![5, 7],
                page: Some("0123456789abcdef".into()),
            },
            totals: true,
            ticket: Some(3),
            client: ClientKey::parse("0123456789abcdef0123456789abcdef"),
            stream: "00000000000000ff".into(),
        }
    }

    #[test]
    fn sessions_round_trip() {
        let session = session();
        assert_eq!(Session::parse(&session.encode()), Ok(session.clone()));
        let key = [7u8; 32];
        assert_eq!(
            Session::verify(&session.sign(&key), &key),
            Ok(session.clone())
        );
        assert!(Session::verify(&session.sign(&key), &[8u8; 32]).is_err());
    }

    #[test]
    fn a_link_token_is_one_path_segment_and_only_this_key_reads_it() {
        let session = session();
        let key = [7u8; 32];
        let token = session.to_link_token(&key);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Session::from_link_token(&token, &key), Ok(session));
        for bad in ["", "!!", "aGVsbG8", &token[1..]] {
            assert_eq!(
                Session::from_link_token(bad, &key).map_err(|e| e.code()),
                Err("invalid_session"),
                "{bad}"
            );
        }
        assert!(Session::from_link_token(&token, &[8u8; 32]).is_err());
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
