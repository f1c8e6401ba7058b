//! The webhooks' admin endpoints: what they answer, and what they refuse without storing.

use super::*;
use crate::platform::config::{UnregisteredSites, WebhookHttp};
use crate::platform::testing::TestServices;
use crate::surfaces::router;

const TOKEN: &str = "Bearer admin";

/// Through the router, as a request arrives: (status, JSON body).
fn call(
    t: &TestServices,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        builder = builder.header("authorization", auth);
    }
    let req = builder.body(body.as_bytes().to_vec()).expect("request");
    let resp = router::handle(&req, &t.services()).response;
    let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), body)
}

/// As production: registered sites only, HTTPS only.
fn services() -> TestServices {
    let mut t = TestServices::new();
    t.set_admin_token(b"admin");
    t.config.unregistered_sites = UnregisteredSites::Refuse;
    let (status, _) = call(&t, "PUT", "/admin/sites/shop", Some(TOKEN), "{}");
    assert_eq!(status, 200);
    t
}

#[test]
fn a_hook_is_added_with_its_secret_listed_without_it_and_removed() {
    let t = services();
    let (status, added) = call(
        &t,
        "POST",
        "/admin/sites/shop/hooks",
        Some(TOKEN),
        r#"{"url": "https://hooks.example/live", "above": 100, "hysteresis": 10}"#,
    );
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_str().expect("id").to_string();
    assert!(added["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(added["siteId"], "shop");
    let (status, listed) = call(&t, "GET", "/admin/sites/shop/hooks", Some(TOKEN), "");
    assert_eq!(status, 200);
    assert_eq!(
        listed,
        json!({"siteId": "shop", "hooks": [
            {"id": id, "url": "https://hooks.example/live", "above": 100, "hysteresis": 10}
        ]})
    );
    // The registry's entry is untouched.
    let (_, mut entry) = call(&t, "GET", "/admin/sites/shop", Some(TOKEN), "");
    // (Beside its settings, the site's dashboard key and address: not the hooks'.)
    let fields = entry.as_object_mut().expect("an object");
    fields.remove("dashboardKey");
    fields.remove("dashboard");
    assert_eq!(entry, json!({"siteId": "shop"}));
    let path = format!("/admin/sites/shop/hooks/{id}");
    assert_eq!(
        call(&t, "DELETE", &path, Some(TOKEN), ""),
        (200, json!({"siteId": "shop", "id": id, "removed": true}))
    );
    let (status, gone) = call(&t, "DELETE", &path, Some(TOKEN), "");
    assert_eq!(
        (status, gone["error"].as_str()),
        (404, Some("unknown_hook"))
    );
    let lines = t.log.lines();
    assert!(lines
        .iter()
        .any(|l| l.starts_with("liveuser hook-added site=shop")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("liveuser hook-removed site=shop")));
    assert!(
        !lines.iter().any(|l| l.contains("whsec_")),
        "a secret is never logged"
    );
}

#[test]
fn bad_input_gets_a_precise_4xx_and_stores_nothing() {
    let t = services();
    let keys = t.kv.keys();
    let hook = r#"{"url": "https://hooks.example/", "above": 5}"#;
    for (method, path, auth, body, status, code) in [
        (
            "POST",
            "/admin/sites/shop/hooks",
            None,
            hook,
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some("Bearer no"),
            hook,
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/admin/sites/shop/hooks",
            None,
            "",
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            r#"{"url": "http://hooks.example/", "above": 5}"#,
            400,
            "hook_url_not_https",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            r#"{"url": "http://127.0.0.1:9000/", "above": 5}"#,
            400,
            "hook_url_not_https",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            r#"{"url": "https://hooks.example/", "above": "lots"}"#,
            400,
            "invalid_threshold",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            r#"{"url": "https://hooks.example/", "above": 5, "hysteresis": 9}"#,
            400,
            "invalid_hysteresis",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            r#"{"url": "not a url", "above": 5}"#,
            400,
            "invalid_hook_url",
        ),
        (
            "POST",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            "{",
            400,
            "invalid_hook",
        ),
        (
            "POST",
            "/admin/sites/nobody/hooks",
            Some(TOKEN),
            hook,
            404,
            "unknown_site",
        ),
        (
            "POST",
            "/admin/sites/a%20b/hooks",
            Some(TOKEN),
            hook,
            400,
            "invalid_site_id",
        ),
        (
            "PUT",
            "/admin/sites/shop/hooks",
            Some(TOKEN),
            hook,
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/admin/sites/shop/hooks/hk_1",
            Some(TOKEN),
            "",
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/admin/sites/shop/hooks/hk_1",
            Some(TOKEN),
            "",
            404,
            "unknown_hook",
        ),
    ] {
        let (got, body) = call(&t, method, path, auth, body);
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{method} {path} {body}"
        );
    }
    assert_eq!(t.kv.keys(), keys, "nothing stored");
    // The local stack takes plain HTTP to this machine, and only there.
    let mut local = services();
    local.config.webhook_http = WebhookHttp::Loopback;
    let (status, _) = call(
        &local,
        "POST",
        "/admin/sites/shop/hooks",
        Some(TOKEN),
        r#"{"url": "http://127.0.0.1:9000/", "above": 5}"#,
    );
    assert_eq!(status, 201);
}

#[test]
fn a_removed_site_s_hooks_go_with_it() {
    let t = services();
    let hook = r#"{"url": "https://hooks.example/", "above": 5}"#;
    assert_eq!(
        call(&t, "POST", "/admin/sites/shop/hooks", Some(TOKEN), hook).0,
        201
    );
    assert_eq!(
        call(&t, "DELETE", "/admin/sites/shop", Some(TOKEN), "").0,
        200
    );
    assert_eq!(
        call(&t, "PUT", "/admin/sites/shop", Some(TOKEN), "{}").0,
        200
    );
    let (_, listed) = call(&t, "GET", "/admin/sites/shop/hooks", Some(TOKEN), "");
    assert_eq!(listed["hooks"], json!([]));
    assert!(!t.kv.keys().iter().any(|k| k.starts_with("hooks/")));
}

#[test]
fn a_site_takes_a_bounded_number_of_hooks() {
    let t = services();
    let hook = r#"{"url": "https://hooks.example/", "above": 5}"#;
    for _ in 0..hooks::MAX_HOOKS {
        assert_eq!(
            call(&t, "POST", "/admin/sites/shop/hooks", Some(TOKEN), hook).0,
            201
        );
    }
    let (status, body) = call(&t, "POST", "/admin/sites/shop/hooks", Some(TOKEN), hook);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("too_many_hooks"))
    );
}

#[test]
fn the_registry_s_paths_are_still_the_registry_s() {
    assert!(owns("/admin/sites/shop/hooks"));
    assert!(owns("/admin/sites/shop/hooks/hk_1"));
    assert!(!owns("/admin/sites/shop"));
    assert!(!owns("/admin/sites"));
    assert!(!owns("/admin/sites/shop/hooksy"));
}
