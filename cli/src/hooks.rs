//! The `hooks` commands, over the service's admin API (`/admin/sites/SITE/hooks`): the service
//! checks every field (an `https://` URL, whole numbers) and its refusals are shown as it words
//! them. The signing secret is printed once, when a hook is added: the service never shows it
//! again.

use serde_json::{json, Value};

use crate::args::HookAction;
use crate::encode::component;
use crate::sites::call;
use crate::target::Service;

pub fn run(service: &Service, action: &HookAction) -> Result<(), String> {
    match action {
        HookAction::Add {
            site,
            url,
            above,
            hysteresis,
        } => {
            let mut body = json!({"url": url, "above": above});
            if let Some(h) = hysteresis {
                body["hysteresis"] = json!(h);
            }
            let added = call(service, "POST", &path(site), Some(&body))?
                .ok_or_else(|| format!("{site} is not registered"))?;
            println!("added {}", describe(&added));
            println!(
                "signing secret (shown this once; keep it where your receiver can read it):\n{}",
                added["secret"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        HookAction::List(site) => {
            let listed = call(service, "GET", &path(site), None)?
                .ok_or_else(|| format!("{site} is not registered"))?;
            let hooks = listed["hooks"].as_array().cloned().unwrap_or_default();
            for hook in &hooks {
                println!("{}", describe(hook));
            }
            eprintln!(
                "{} webhook{} on {site}",
                hooks.len(),
                if hooks.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
        HookAction::Remove { site, id } => {
            call(
                service,
                "DELETE",
                &format!("{}/{}", path(site), component(id)),
                None,
            )?
            .ok_or_else(|| format!("{site} is not registered"))?;
            println!("removed {id} from {site}");
            Ok(())
        }
    }
}

fn path(site: &str) -> String {
    format!("/admin/sites/{site}/hooks")
}

/// A hook in words.
fn describe(hook: &Value) -> String {
    let above = hook["above"].as_u64().unwrap_or_default();
    let hysteresis = hook["hysteresis"].as_u64().unwrap_or_default();
    format!(
        "{}: {} when online >= {above}, and when it falls below {}",
        hook["id"].as_str().unwrap_or_default(),
        hook["url"].as_str().unwrap_or_default(),
        above - hysteresis.min(above)
    )
}
