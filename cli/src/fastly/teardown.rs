//! `liveuser teardown --yes`: removes what a deploy made, so nothing is left running or
//! billed: the service (its active version deactivated first), then its three stores (the KV
//! store emptied first, as Fastly deletes only an empty one), and `service_id` in
//! `fastly.toml` (the next deploy makes a new service). The publish token is an account token,
//! not the service's: it says which to revoke. Safe to run again.

use super::{manifest_path, say, service_id, store_id, Api, Body};
use super::{CONFIG_STORE, KV_STORE, PUBLISH_TOKEN, SECRET_STORE};

pub fn run(confirmed: bool) -> Result<(), String> {
    let sid = service_id()?;
    if !confirmed {
        return Err(format!(
            "this deletes service {sid}, its stores ({KV_STORE}, {CONFIG_STORE}, {SECRET_STORE}) and everything they hold: run again with --yes"
        ));
    }
    let api = Api::from_environment()?;
    delete_service(&api, &sid)?;
    for (kind, name) in [
        ("kv", KV_STORE),
        ("config", CONFIG_STORE),
        ("secret", SECRET_STORE),
    ] {
        match store_id(&api, kind, name)? {
            Some(id) => {
                if kind == "kv" {
                    empty_kv_store(&api, &id)?;
                }
                api.must(
                    "DELETE",
                    &format!("/resources/stores/{kind}/{id}"),
                    Body::None,
                )?;
                say(&format!("{kind} store {name} deleted"));
            }
            None => say(&format!("no {kind} store named {name}")),
        }
    }
    forget_service_id()?;
    say(&format!(
        "done. Revoke the {PUBLISH_TOKEN} you made for service {sid} (manage.fastly.com: Account, API tokens): it was an account token, so it outlives the service"
    ));
    Ok(())
}

fn delete_service(api: &Api, sid: &str) -> Result<(), String> {
    let Some(details) = api.call("GET", &format!("/service/{sid}/details"), Body::None, true)?
    else {
        say(&format!("service {sid} is gone already"));
        return Ok(());
    };
    if let Some(n) = details["active_version"]["number"].as_u64() {
        api.must(
            "PUT",
            &format!("/service/{sid}/version/{n}/deactivate"),
            Body::None,
        )?;
        say(&format!("service {sid} version {n} deactivated"));
    }
    api.must("DELETE", &format!("/service/{sid}"), Body::None)?;
    say(&format!("service {sid} deleted"));
    Ok(())
}

/// Deletes every key of the KV store, a listing page at a time.
fn empty_kv_store(api: &Api, id: &str) -> Result<(), String> {
    let mut deleted = 0u64;
    loop {
        let page = api.must(
            "GET",
            &format!("/resources/stores/kv/{id}/keys?limit=1000"),
            Body::None,
        )?;
        let keys: Vec<String> = page["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        if keys.is_empty() {
            break;
        }
        for key in &keys {
            api.call(
                "DELETE",
                &format!(
                    "/resources/stores/kv/{id}/keys/{}",
                    crate::encode::component(key)
                ),
                Body::None,
                true,
            )?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        say(&format!("{deleted} keys deleted from the KV store"));
    }
    Ok(())
}

/// Empties `service_id` in fastly.toml, keeping the rest of the file as it is.
fn forget_service_id() -> Result<(), String> {
    let path = manifest_path()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{} is not TOML: {e}", path.display()))?;
    doc["service_id"] = toml_edit::value("");
    std::fs::write(&path, doc.to_string())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    say("fastly.toml forgets the service id: the next deploy makes a new service");
    Ok(())
}
