//! What the stand-in holds (services, versions, stores, products) and each request as it
//! received it, with the form encoding the API's form bodies use.

use std::collections::BTreeMap;

use serde_json::Value;

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// Whether the stand-in knew the request (an unknown one is answered 404).
    pub known: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as `application/x-www-form-urlencoded` pairs (none for other bodies).
    pub fn form(&self) -> BTreeMap<String, String> {
        let is_form = self
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return BTreeMap::new();
        }
        form_pairs(&String::from_utf8_lossy(&self.body))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A backend as the API keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub override_host: Option<String>,
    pub ssl_cert_hostname: Option<String>,
    pub ssl_sni_hostname: Option<String>,
    /// `use_ssl` as last set (the API's default is off).
    pub use_ssl: bool,
}

/// One version of a service.
#[derive(Debug, Clone, Default)]
pub struct Version {
    pub number: u32,
    pub active: bool,
    pub domains: Vec<String>,
    pub backends: BTreeMap<String, Backend>,
    /// Resource links: link name → store id.
    pub resources: BTreeMap<String, String>,
    /// The uploaded package's size, if one was.
    pub package_bytes: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub versions: Vec<Version>,
    pub deleted: bool,
}

impl Service {
    pub fn version(&self, n: u32) -> Option<&Version> {
        self.versions.iter().find(|v| v.number == n)
    }

    pub fn active(&self) -> Option<&Version> {
        self.versions.iter().rev().find(|v| v.active)
    }
}

/// A KV, config or secret store.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub id: String,
    pub name: String,
    /// Config items, or secrets (decoded from base64).
    pub entries: BTreeMap<String, Vec<u8>>,
}

/// Everything the stand-in holds.
#[derive(Debug, Default)]
pub struct State {
    pub requests: Vec<Recorded>,
    pub services: Vec<Service>,
    pub config_stores: Vec<Store>,
    pub kv_stores: Vec<Store>,
    pub secret_stores: Vec<Store>,
    /// (product, service id) enabled.
    pub products: Vec<(String, String)>,
    /// The account cannot have Fanout (a trial account): enabling it is refused.
    pub fanout_unavailable: bool,
    next_id: u32,
}

impl State {
    pub(super) fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:020}", self.next_id)
    }

    pub fn service(&self) -> Option<&Service> {
        self.services.iter().find(|s| !s.deleted)
    }

    pub(super) fn service_mut(&mut self, id: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.id == id && !s.deleted)
    }

    /// Requests the stand-in did not know.
    pub fn unknown(&self) -> Vec<&Recorded> {
        self.requests.iter().filter(|r| !r.known).collect()
    }
}

pub fn form_pairs(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Percent-decoding with `+` as space, as forms are encoded.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_like_url_encoding() {
        let pairs = form_pairs("name=self&address=a.example&override_host=a%2Eexample&x=1+2");
        assert_eq!(pairs["override_host"], "a.example");
        assert_eq!(pairs["x"], "1 2");
    }
}
