//! A site's threshold webhooks, behind the admin token (what `liveuser hooks` calls):
//!
//! - `GET /admin/sites/{siteId}/hooks` → `{"siteId", "hooks": [{"id", "url", "above",
//!   "hysteresis"}…]}` (secrets are never shown again)
//! - `POST /admin/sites/{siteId}/hooks` with `{"url", "above", "hysteresis"?}` → 201 with the
//!   hook and its `secret`, shown this once; 400 with a code naming the field at fault
//!   (`invalid_hook_url`, `hook_url_not_https`, `invalid_threshold`, `invalid_hysteresis`,
//!   `invalid_hook`, `too_many_hooks`), and nothing stored
//! - `DELETE /admin/sites/{siteId}/hooks/{hookId}` → `{"siteId", "id", "removed": true}`, or 404
//!   `unknown_hook`
//!
//! A site the service does not serve (unregistered, where only registered sites are served) is
//! 404 `unknown_site`. A change is checked against counts at this POP at once and at every
//! other within `count::hooks::settings::FRESH_MS`.

use http::{Method, Request};
use serde_json::{json, Value};

use crate::count::hooks::{self, AddError, Hook, NewHook};
use crate::count::registry;
use crate::platform::kv::KvError;
use crate::platform::log::Line;
use crate::platform::Services;
use crate::surfaces::admin::authorize;
use crate::surfaces::Handled;
use crate::wire::error::HttpError;
use crate::wire::response;
use crate::wire::site::SiteId;

const PREFIX: &str = "/admin/sites/";

/// The site id and the rest of a hooks path: `(site, None)` for the list, `(site, Some(id))`
/// for one hook.
fn split(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (site, rest) = rest.split_once('/')?;
    match rest.strip_prefix("hooks")? {
        "" => Some((site, None)),
        id => id.strip_prefix('/').map(|id| (site, Some(id))),
    }
}

/// Whether `path` is one of these endpoints.
pub fn owns(path: &str) -> bool {
    split(path).is_some()
}

/// Answers a hooks request: method, admin token, site, then the store.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Handled, HttpError> {
    let Some((raw_site, id)) = split(req.uri().path()) else {
        return Err(HttpError::NotFound);
    };
    let allow = if id.is_some() { "DELETE" } else { "GET, POST" };
    let allowed = match id {
        None => matches!(*req.method(), Method::GET | Method::POST),
        Some(_) => *req.method() == Method::DELETE,
    };
    if !allowed {
        return Err(HttpError::MethodNotAllowed { allow });
    }
    authorize(req, services)?;
    let site = SiteId::parse(raw_site)?;
    registry::check_site(services, &site)?;
    match id {
        None if *req.method() == Method::GET => list(services, &site),
        None => add(req, services, &site),
        Some(id) => remove(services, &site, id),
    }
    .map(Handled::from)
}

/// A store that failed: logged with the site, 503 to the caller.
fn unavailable(services: &Services, site: &SiteId, e: &KvError) -> HttpError {
    services.log.emit(&Line::Detail {
        event: "hooks-failed",
        site,
        detail: &e.to_string(),
    });
    HttpError::Unavailable("the site's webhooks could not be read or written; try again".into())
}

/// A hook as shown: everything but its secret.
fn shown(hook: &Hook) -> Value {
    json!({"id": hook.id, "url": hook.url, "above": hook.above, "hysteresis": hook.hysteresis})
}

fn list(services: &Services, site: &SiteId) -> Result<http::Response<Vec<u8>>, HttpError> {
    let (hooks, _) =
        hooks::settings::read(services.kv, site).map_err(|e| unavailable(services, site, &e))?;
    let shown: Vec<Value> = hooks.iter().map(shown).collect();
    Ok(response::json(
        200,
        &json!({"siteId": site.as_str(), "hooks": shown}),
    ))
}

fn add(
    req: &Request<Vec<u8>>,
    services: &Services,
    site: &SiteId,
) -> Result<http::Response<Vec<u8>>, HttpError> {
    let refused = |e: hooks::HookError| HttpError::InvalidParameter {
        code: e.code(),
        message: e.to_string(),
    };
    let new = NewHook::from_json(req.body(), services.config.webhook_http).map_err(refused)?;
    let hook = match hooks::settings::add(services, site, &new) {
        Ok(hook) => hook,
        Err(AddError::TooMany) => return Err(refused(hooks::HookError::TooMany)),
        Err(AddError::Store(e)) => return Err(unavailable(services, site, &e)),
    };
    services.log.emit(&Line::Detail {
        event: "hook-added",
        site,
        detail: &format!(
            "{} above={} hysteresis={}",
            hook.id, hook.above, hook.hysteresis
        ),
    });
    let mut body = shown(&hook);
    body["siteId"] = json!(site.as_str());
    body["secret"] = json!(hook.secret);
    Ok(response::json(201, &body))
}

fn remove(
    services: &Services,
    site: &SiteId,
    id: &str,
) -> Result<http::Response<Vec<u8>>, HttpError> {
    match hooks::remove(services, site, id) {
        Ok(true) => {
            services.log.emit(&Line::Detail {
                event: "hook-removed",
                site,
                detail: id,
            });
            Ok(response::json(
                200,
                &json!({"siteId": site.as_str(), "id": id, "removed": true}),
            ))
        }
        Ok(false) => Err(HttpError::UnknownHook(format!(
            "{site} has no webhook {id:?}"
        ))),
        Err(e) => Err(unavailable(services, site, &e)),
    }
}

#[cfg(test)]
mod tests;
