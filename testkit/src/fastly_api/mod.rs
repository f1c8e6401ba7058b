//! A stand-in for Fastly's API, for running the real Fastly CLI's `compute deploy` (and the
//! project's own `liveuser configure` and `teardown`) against it: `FASTLY_API_ENDPOINT` and
//! `FASTLY_ACCOUNT_ENDPOINT` point the CLI here.
//!
//! It answers only what those ask, the way the API does (paths, form or JSON bodies, the
//! response fields the CLI reads), keeps what they created (services, versions, domains,
//! backends, stores, links, products, packages, activations) so a test can assert on it, and
//! records every request. Anything it does not know is answered 404 and recorded, so a test can
//! insist there was none. What a teardown and a stored token ask is in [`account`].

mod account;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

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
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:020}", self.next_id)
    }

    pub fn service(&self) -> Option<&Service> {
        self.services.iter().find(|s| !s.deleted)
    }

    fn service_mut(&mut self, id: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.id == id && !s.deleted)
    }

    /// Requests the stand-in did not know.
    pub fn unknown(&self) -> Vec<&Recorded> {
        self.requests.iter().filter(|r| !r.known).collect()
    }
}

/// A running stand-in.
pub struct FastlyApi {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl FastlyApi {
    pub fn start() -> FastlyApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API stand-in");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FastlyApi { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A copy of what it holds now.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("state"))
    }

    /// Changes what it holds (a test setting up what the account has).
    pub fn with_state_mut<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("state"))
    }
}

/// Serves the requests of one connection (the CLI keeps connections alive).
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let Ok(write) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write;
    while let Some(mut req) = read_request(&mut reader) {
        let (status, body) = {
            let mut s = state.lock().expect("state");
            let (status, body) = route(&mut s, &req);
            req.status = status;
            req.known = body.get("msg").and_then(Value::as_str) != Some(UNKNOWN);
            s.requests.push(req);
            (status, body)
        };
        let text = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(text.as_bytes()).is_err()
        {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let len = header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        body
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Recorded {
        method,
        path,
        query,
        headers,
        body,
        status: 0,
        known: true,
    })
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0u8; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn form_pairs(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Percent-decoding with `+` as space, as forms are encoded.
fn decode(s: &str) -> String {
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

fn backend_json(sid: &str, version: u32, b: &Backend) -> Value {
    json!({
        "service_id": sid, "version": version, "name": b.name, "address": b.address,
        "port": b.port, "override_host": b.override_host,
        "ssl_cert_hostname": b.ssl_cert_hostname, "ssl_sni_hostname": b.ssl_sni_hostname,
        "use_ssl": b.use_ssl,
    })
}

fn apply_backend_form(b: &mut Backend, form: &BTreeMap<String, String>) {
    let opt = |k: &str| form.get(k).filter(|v| !v.is_empty()).cloned();
    if let Some(a) = opt("address") {
        b.address = a;
    }
    if let Some(p) = form.get("port").and_then(|p| p.parse().ok()) {
        b.port = p;
    }
    if let Some(v) = opt("override_host") {
        b.override_host = Some(v);
    }
    if let Some(v) = opt("ssl_cert_hostname") {
        b.ssl_cert_hostname = Some(v);
    }
    if let Some(v) = opt("ssl_sni_hostname") {
        b.ssl_sni_hostname = Some(v);
    }
    if let Some(v) = form.get("use_ssl") {
        b.use_ssl = matches!(v.as_str(), "1" | "true");
    }
}

fn store_list(stores: &[Store], paged: bool) -> Value {
    let data: Vec<Value> = stores
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name}))
        .collect();
    if paged {
        json!({"data": data, "meta": {"limit": 100, "next_cursor": ""}})
    } else {
        Value::Array(data)
    }
}

/// Answers one request: (status, JSON body).
fn route(s: &mut State, req: &Recorded) -> (u16, Value) {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let form = req.form();
    if let Some(answer) = account::route(s, req, &segments) {
        return answer;
    }
    match (req.method.as_str(), segments.as_slice()) {
        // The CLI's login discovery (FASTLY_ACCOUNT_ENDPOINT points here too).
        ("GET", ["realms", "fastly", ".well-known", "openid-configuration"]) => (200, json!({})),
        ("POST", ["service"]) => {
            let id = s.id("SVC");
            s.services.push(Service {
                id: id.clone(),
                name: form.get("name").cloned().unwrap_or_default(),
                kind: form.get("type").cloned().unwrap_or_default(),
                versions: vec![Version {
                    number: 1,
                    ..Version::default()
                }],
                deleted: false,
            });
            (
                200,
                json!({"id": id, "name": form.get("name"), "type": form.get("type"), "versions": [{"number": 1}]}),
            )
        }
        ("DELETE", ["service", sid]) => match s.service_mut(sid) {
            Some(svc) => {
                svc.deleted = true;
                (200, json!({"status": "ok"}))
            }
            None => (404, json!({"msg": "no such service"})),
        },
        ("GET", ["service", sid, "details"]) => match s.service_mut(sid) {
            Some(svc) => {
                let versions: Vec<Value> = svc
                    .versions
                    .iter()
                    .map(|v| json!({"number": v.number, "active": v.active, "locked": v.active}))
                    .collect();
                let active = svc
                    .active()
                    .map(|v| json!({"number": v.number, "active": true, "locked": true}));
                (
                    200,
                    json!({"id": svc.id, "name": svc.name, "type": svc.kind, "versions": versions, "active_version": active, "version": active}),
                )
            }
            None => (404, json!({"msg": "no such service"})),
        },
        (method, ["service", sid, "version", v, rest @ ..]) => {
            let sid = sid.to_string();
            let Some(n) = v.parse::<u32>().ok() else {
                return (404, json!({"msg": "bad version"}));
            };
            let Some(svc) = s.service_mut(&sid) else {
                return (404, json!({"msg": "no such service"}));
            };
            if method == "PUT" && rest == ["clone"] {
                let Some(from) = svc.version(n).cloned() else {
                    return (404, json!({"msg": "no such version"}));
                };
                let number = svc.versions.len() as u32 + 1;
                svc.versions.push(Version {
                    number,
                    active: false,
                    ..from
                });
                return (200, json!({"service_id": sid, "number": number}));
            }
            if method == "PUT" && rest == ["activate"] {
                if svc.version(n).is_none() {
                    return (404, json!({"msg": "no such version"}));
                }
                for version in &mut svc.versions {
                    version.active = version.number == n;
                }
                return (200, json!({"service_id": sid, "number": n, "active": true}));
            }
            let Some(version) = svc.versions.iter_mut().find(|x| x.number == n) else {
                return (404, json!({"msg": "no such version"}));
            };
            match (method, rest) {
                ("GET", ["domain"]) => (
                    200,
                    Value::Array(
                        version
                            .domains
                            .iter()
                            .map(|d| json!({"name": d, "service_id": sid, "version": n}))
                            .collect(),
                    ),
                ),
                ("POST", ["domain"]) => {
                    let name = form.get("name").cloned().unwrap_or_default();
                    version.domains.push(name.clone());
                    (200, json!({"name": name, "service_id": sid, "version": n}))
                }
                ("POST", ["backend"]) => {
                    let mut b = Backend {
                        name: form.get("name").cloned().unwrap_or_default(),
                        port: 80,
                        ..Backend::default()
                    };
                    apply_backend_form(&mut b, &form);
                    let body = backend_json(&sid, n, &b);
                    version.backends.insert(b.name.clone(), b);
                    (200, body)
                }
                ("GET", ["backend", name]) => match version.backends.get(*name) {
                    Some(b) => (200, backend_json(&sid, n, b)),
                    None => (404, json!({"msg": "no such backend"})),
                },
                ("PUT", ["backend", name]) => match version.backends.get_mut(*name) {
                    Some(b) => {
                        apply_backend_form(b, &form);
                        (200, backend_json(&sid, n, b))
                    }
                    None => (404, json!({"msg": "no such backend"})),
                },
                ("POST", ["resource"]) => {
                    let name = form.get("name").cloned().unwrap_or_default();
                    let id = form.get("resource_id").cloned().unwrap_or_default();
                    version.resources.insert(name.clone(), id.clone());
                    (
                        200,
                        json!({"id": format!("link-{name}"), "name": name, "resource_id": id, "service_id": sid, "version": n}),
                    )
                }
                ("PUT", ["package"]) => {
                    version.package_bytes = Some(multipart_file_len(req, "package"));
                    (
                        200,
                        json!({"service_id": sid, "version": n, "metadata": {}}),
                    )
                }
                ("GET", ["package"]) => (404, json!({"msg": "no package"})),
                _ => (404, json!({"msg": UNKNOWN})),
            }
        }
        ("GET", ["resources", "stores", "config"]) => (200, store_list(&s.config_stores, false)),
        ("GET", ["resources", "stores", "kv"]) => (200, store_list(&s.kv_stores, true)),
        ("GET", ["resources", "stores", "secret"]) => {
            let wanted = form_pairs(&req.query).get("name").cloned();
            let stores: Vec<Store> = s
                .secret_stores
                .iter()
                .filter(|st| wanted.as_ref().is_none_or(|w| *w == st.name))
                .cloned()
                .collect();
            (200, store_list(&stores, true))
        }
        ("POST", ["resources", "stores", kind]) => {
            let name = match *kind {
                "config" => form.get("name").cloned(),
                _ => req.json()["name"].as_str().map(str::to_string),
            }
            .unwrap_or_default();
            let id = s.id(&format!("{kind}-"));
            let store = Store {
                id: id.clone(),
                name: name.clone(),
                entries: BTreeMap::new(),
            };
            match *kind {
                "config" => s.config_stores.push(store),
                "kv" => s.kv_stores.push(store),
                "secret" => s.secret_stores.push(store),
                _ => return (404, json!({"msg": "unknown store kind"})),
            }
            (200, json!({"id": id, "name": name}))
        }
        ("GET", ["resources", "stores", "config", id, "item", key]) => {
            match s.config_stores.iter().find(|st| st.id == *id) {
                Some(st) => match st.entries.get(*key) {
                    Some(v) => (
                        200,
                        json!({"store_id": id, "item_key": key,
                               "item_value": String::from_utf8_lossy(v)}),
                    ),
                    None => (404, json!({"msg": "no such item"})),
                },
                None => (404, json!({"msg": "no such store"})),
            }
        }
        ("PUT", ["resources", "stores", "config", id, "item", key]) => {
            match s.config_stores.iter_mut().find(|st| st.id == *id) {
                Some(st) => {
                    let v = form.get("item_value").cloned().unwrap_or_default();
                    st.entries.insert(key.to_string(), v.clone().into_bytes());
                    (
                        200,
                        json!({"store_id": id, "item_key": key, "item_value": v}),
                    )
                }
                None => (404, json!({"msg": "no such store"})),
            }
        }
        ("GET", ["resources", "stores", "secret", id, "secrets", name]) => {
            match s.secret_stores.iter().find(|st| st.id == *id) {
                Some(st) if st.entries.contains_key(*name) => (200, json!({"name": name})),
                _ => (404, json!({"msg": "no such secret"})),
            }
        }
        (method @ ("POST" | "PUT"), ["resources", "stores", "secret", id, "secrets"]) => {
            use base64::Engine;
            let body = req.json();
            let name = body["name"].as_str().unwrap_or_default().to_string();
            let Ok(secret) = base64::engine::general_purpose::STANDARD
                .decode(body["secret"].as_str().unwrap_or_default())
            else {
                return (400, json!({"msg": "secret is not base64"}));
            };
            match s.secret_stores.iter_mut().find(|st| st.id == *id) {
                Some(st) if method == "POST" && st.entries.contains_key(&name) => {
                    (409, json!({"msg": "secret exists"}))
                }
                Some(st) => {
                    st.entries.insert(name.clone(), secret);
                    (
                        200,
                        json!({"name": name, "digest": "AAAA", "created_at": "2026-11-28T00:00:00Z"}),
                    )
                }
                None => (404, json!({"msg": "no such store"})),
            }
        }
        ("PUT", ["enabled-products", "v1", product, "services", sid]) => {
            s.products.push((product.to_string(), sid.to_string()));
            (
                200,
                json!({"product": {"id": product}, "service": {"id": sid}}),
            )
        }
        _ => (404, json!({"msg": UNKNOWN})),
    }
}

/// What the stand-in answers a request it does not know.
const UNKNOWN: &str = "unknown to the stand-in";

/// The length of the named file part of a multipart body (0 when there is none).
fn multipart_file_len(req: &Recorded, field: &str) -> usize {
    let Some(boundary) = req
        .header("content-type")
        .and_then(|ct| ct.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_string())
    else {
        return 0;
    };
    let delimiter = format!("--{boundary}");
    let body = &req.body;
    let marker = format!("name=\"{field}\"");
    let Some(at) = find(body, marker.as_bytes()) else {
        return 0;
    };
    let Some(start) = find(&body[at..], b"\r\n\r\n").map(|i| at + i + 4) else {
        return 0;
    };
    let end = find(&body[start..], format!("\r\n{delimiter}").as_bytes())
        .map_or(body.len(), |i| start + i);
    end - start
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
