//! What the stand-in answers a deploy: services, versions, domains, backends, resource links,
//! stores and their items, secrets, products, packages. Anything else is [`account`]'s, or
//! unknown (404, recorded).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::account;
use super::state::{form_pairs, Backend, Recorded, Service, State, Store, Version};

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
pub(super) fn route(s: &mut State, req: &Recorded) -> (u16, Value) {
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
pub(super) const UNKNOWN: &str = "unknown to the stand-in";

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
