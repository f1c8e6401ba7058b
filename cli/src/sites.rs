//! The `sites` commands, over the service's admin API (`/admin/sites`). The service checks
//! every setting again and answers what it stored; its refusals are shown as it words them.

use serde_json::{json, Value};

use crate::args::Action;
use crate::target::Service;

pub fn run(service: &Service, action: &Action) -> Result<(), String> {
    match action {
        Action::Add {
            site,
            origins,
            min_count,
            pages,
            new_dashboard_key,
        } => {
            let existed = call(service, "GET", &format!("/admin/sites/{site}"), None)?.is_some();
            let mut body = json!({});
            if !origins.is_empty() {
                body["origins"] = json!(origins);
            }
            if let Some(n) = min_count {
                body["minCount"] = json!(n);
            }
            if !pages.is_empty() {
                body["pages"] = json!(pages);
            }
            let rotate = if *new_dashboard_key {
                "?newDashboardKey=1"
            } else {
                ""
            };
            let path = format!("/admin/sites/{site}{rotate}");
            let stored = call(service, "PUT", &path, Some(&body))?
                .ok_or_else(|| format!("{} answered no entry", service.url))?;
            let verb = if existed { "updated" } else { "added" };
            println!("{verb} {site}: {}", describe(&stored));
            print_dashboard(service, &stored);
            Ok(())
        }
        Action::List => {
            let mut cursor: Option<String> = None;
            let mut n = 0;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/admin/sites?cursor={}", crate::encode::component(c)),
                    None => "/admin/sites".to_string(),
                };
                let page = call(service, "GET", &path, None)?.unwrap_or_default();
                for site in page["sites"].as_array().into_iter().flatten() {
                    println!("{}", site.as_str().unwrap_or_default());
                    n += 1;
                }
                match page["cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => break,
                }
            }
            eprintln!("{n} site{} registered", if n == 1 { "" } else { "s" });
            Ok(())
        }
        Action::Show(site) => match call(service, "GET", &format!("/admin/sites/{site}"), None)? {
            Some(entry) => {
                println!("{site}: {}", describe(&entry));
                print_dashboard(service, &entry);
                Ok(())
            }
            None => Err(format!("{site} is not registered")),
        },
        Action::Remove(site) => {
            match call(service, "DELETE", &format!("/admin/sites/{site}"), None)? {
                Some(_) => {
                    println!(
                        "removed {site}: it is refused from now on (within seconds everywhere)"
                    );
                    Ok(())
                }
                None => Err(format!("{site} is not registered")),
            }
        }
    }
}

/// The site's dashboard's address, its key in the fragment (which no server sees).
fn print_dashboard(service: &Service, entry: &Value) {
    if let Some(path) = entry["dashboard"].as_str() {
        println!("dashboard: {}{path}", service.url);
    }
}

/// A site's settings in words.
fn describe(entry: &Value) -> String {
    let list = |field: &str, none: &str| match entry[field].as_array() {
        Some(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        None => none.to_string(),
    };
    let floor = entry["minCount"]
        .as_u64()
        .map_or("none".to_string(), |n| n.to_string());
    format!(
        "origins: {}; privacy floor: {floor}; pages: {}",
        list("origins", "any"),
        list("pages", "every page")
    )
}

/// One admin request: the answer's JSON, `None` for a 404 `unknown_site`, or what went wrong
/// in words.
pub fn call(
    service: &Service,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Option<Value>, String> {
    let url = format!("{}{path}", service.url);
    let request = ureq::request(method, &url)
        .set("authorization", &format!("Bearer {}", service.token))
        .timeout(std::time::Duration::from_secs(30));
    let result = match body {
        Some(body) => request
            .set("content-type", "application/json")
            .send_string(&body.to_string()),
        None => request.call(),
    };
    match result {
        Ok(resp) => resp
            .into_string()
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(Some)
            .ok_or_else(|| format!("{url} answered something that is not JSON")),
        Err(ureq::Error::Status(status, resp)) => {
            let body: Value = resp
                .into_string()
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or(Value::Null);
            let code = body["error"].as_str().unwrap_or_default();
            let message = body["message"].as_str().unwrap_or_default();
            match (status, code) {
                (404, "unknown_site") => Ok(None),
                (404, "unknown_hook") => Err(message.to_string()),
                (401, _) => Err(format!(
                    "{} refused the admin token: {message}",
                    service.url
                )),
                (403, _) => Err(format!(
                    "{}: {message} (set its admin_token secret)",
                    service.url
                )),
                (404, _) => Err(format!(
                    "{} has no site registry ({status}): is it a LiveUser service of this version?",
                    service.url
                )),
                _ => Err(format!(
                    "{} answered {status} {code}: {message}",
                    service.url
                )),
            }
        }
        Err(e) => Err(format!("cannot reach {}: {e}", service.url)),
    }
}
