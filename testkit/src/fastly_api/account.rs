//! What the stand-in answers beyond a deploy: the token check the Fastly CLI makes when a
//! token is stored, products looked up, and everything a teardown asks (versions
//! deactivated, stores emptied and deleted).

use serde_json::{json, Value};

use super::state::{decode, Recorded, State};

/// The answer to `req` if it is one of these, else `None`.
pub(super) fn route(s: &mut State, req: &Recorded, segments: &[&str]) -> Option<(u16, Value)> {
    let answer = match (req.method.as_str(), segments) {
        ("GET", ["current_user"]) => (
            200,
            json!({"id": "user-e2e", "login": "owner@example.com", "name": "Owner", "customer_id": "customer-e2e"}),
        ),
        ("GET", ["tokens", "self"]) => (
            200,
            json!({"id": "token-e2e", "user_id": "user-e2e", "scope": "global", "services": []}),
        ),
        ("GET", ["enabled-products", "v1", product, "services", sid]) => {
            if s.products.iter().any(|(p, id)| p == product && id == sid) {
                (
                    200,
                    json!({"product": {"id": product}, "service": {"id": sid}}),
                )
            } else {
                (400, json!({"msg": "product not enabled"}))
            }
        }
        ("PUT", ["enabled-products", "v1", "fanout", "services", _]) if s.fanout_unavailable => (
            400,
            json!({"msg": "Fanout is not available on this account"}),
        ),
        ("PUT", ["service", sid, "version", v, "deactivate"]) => {
            let n: u32 = v.parse().ok()?;
            let svc = s.services.iter_mut().find(|x| x.id == *sid && !x.deleted)?;
            let version = svc.versions.iter_mut().find(|x| x.number == n)?;
            version.active = false;
            (
                200,
                json!({"service_id": sid, "number": n, "active": false}),
            )
        }
        ("GET", ["resources", "stores", "kv", id, "keys"]) => {
            let store = s.kv_stores.iter().find(|st| st.id == *id)?;
            let keys: Vec<&String> = store.entries.keys().take(1000).collect();
            (200, json!({"data": keys, "meta": {}}))
        }
        ("DELETE", ["resources", "stores", "kv", id, "keys", key]) => {
            let store = s.kv_stores.iter_mut().find(|st| st.id == *id)?;
            store.entries.remove(&decode(key));
            (200, json!({"status": "ok"}))
        }
        ("DELETE", ["resources", "stores", kind, id]) => {
            let stores = match *kind {
                "kv" => &mut s.kv_stores,
                "config" => &mut s.config_stores,
                "secret" => &mut s.secret_stores,
                _ => return None,
            };
            let at = stores.iter().position(|st| st.id == *id)?;
            if *kind == "kv" && !stores[at].entries.is_empty() {
                return Some((409, json!({"msg": "the store is not empty"})));
            }
            stores.remove(at);
            (200, json!({"status": "ok"}))
        }
        _ => return None,
    };
    Some(answer)
}
