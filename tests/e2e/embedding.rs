//! Embedding done right, in real headless Chromium: the versioned script pinned with
//! Subresource Integrity and configured by its tag's data-* attributes, under a strict Content
//! Security Policy; a pin the browser must refuse; an old version's URL; and the demo page's
//! badge and chart.

use std::time::Duration;

use serde_json::{json, Value};

use liveuser_testkit::browser::{Browser, PageServer};
use liveuser_testkit::stack::Stack;

const LIMIT: Duration = Duration::from_secs(30);
const COUNT: &str = "var e = document.getElementById('liveuser'); return e ? e.textContent : null;";

/// The versioned script's path and integrity, as the demo page prints them.
fn pinned(stack: &Stack) -> (String, String) {
    let page = stack.http("GET", "/", &[], b"").text();
    let path = page
        .split(&format!("127.0.0.1:{}/v/", stack.app_port))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|rest| format!("/v/{rest}"))
        .expect("the demo page names the pinned script");
    let integrity = page
        .split("integrity=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("and its integrity")
        .to_string();
    (path, integrity)
}

fn strict_page(stack: &Stack, path: &str, integrity: &str) -> String {
    let origin = format!("127.0.0.1:{}", stack.app_port);
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src http://{origin}; connect-src ws://{origin} http://{origin}; img-src http://{origin}">
</head><body><div id="liveuser">Loading...</div><span id="visits" data-liveuser data-liveuser-show="total"></span>
<script defer src="http://{origin}{path}" integrity="{integrity}" crossorigin="anonymous" data-site-id="pinned" data-enable-total-count="true" data-reconnect-delay="abc"></script>
</body></html>"#
    )
}

#[test]
fn a_pinned_script_configured_by_its_tag_works_under_a_strict_csp() {
    let stack = Stack::start();
    let (path, integrity) = pinned(&stack);
    let script = stack.http("GET", &path, &[], b"");
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(script.header("access-control-allow-origin"), Some("*"));
    let pages = PageServer::start();
    let browser = Browser::start();
    browser.goto(&pages.page("/strict", &strict_page(&stack, &path, &integrity)));
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    browser.wait_for(
        "return document.getElementById('visits').textContent;",
        &json!("1"),
        LIMIT,
    );
    let config = browser.eval("return LiveUser.config();");
    assert_eq!(config["siteId"], "pinned");
    assert_eq!(
        config["reconnectDelay"], 3000,
        "a bad delay falls back: {config}"
    );
    let refused: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(
        refused.is_empty(),
        "the policy refused nothing: {refused:?}"
    );
}

#[test]
fn a_pin_that_does_not_match_is_refused_by_the_browser_and_an_old_version_is_a_clear_404() {
    let stack = Stack::start();
    let (path, integrity) = pinned(&stack);
    let pages = PageServer::start();
    let browser = Browser::start();
    let wrong = format!("sha384-{}", "A".repeat(64));
    browser.goto(&pages.page("/tampered", &strict_page(&stack, &path, &wrong)));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(browser.eval(COUNT), json!("Loading..."));
    assert_eq!(
        browser.eval("return typeof window.LiveUser;"),
        json!("undefined")
    );
    let old = stack.http("GET", "/v/000000000000/liveuser.js", &[], b"");
    assert_eq!(old.status, 404);
    assert_eq!(old.json()["error"], "unknown_version");
    let message = old.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains(&path) && message.contains(&integrity),
        "{message}"
    );
}

#[test]
fn the_demo_pages_badge_follows_the_count_and_its_chart_has_axes_and_an_empty_state() {
    let stack = Stack::start();
    let browser = Browser::start();
    browser.goto(&format!("http://127.0.0.1:{}/", stack.app_port));
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    // The badge is fetched again once the reader is counted.
    browser.wait_for(
        "var b = document.getElementById('badge'); return b.getAttribute('data-count');",
        &json!("1"),
        LIMIT,
    );
    let badge = stack
        .http("GET", "/badge/demo.svg?count=1", &[], b"")
        .text();
    assert!(badge.contains(">1<"), "{badge}");
    browser.wait_for(
        "var c = document.getElementById('history-chart'); return c.getAttribute('data-empty');",
        &json!("false"),
        LIMIT,
    );
    let labels = browser.eval(
        "return Array.prototype.map.call(document.querySelectorAll('#history-chart .label'), function (t) { return t.textContent; });",
    );
    assert_eq!(labels, json!(["0", "1", "24 h ago", "12 h ago", "now"]));
    // A site nobody has read: the chart says so instead of an empty box.
    let pages = PageServer::start();
    let quiet = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script>
window.fetch = function () {{
  return Promise.resolve({{ ok: true, json: function () {{
    return Promise.resolve({{ points: new Array(1440).fill(null), peak: null, todayPeak: null }});
  }} }});
}};
</script></head><body><p id="today-peak"></p><svg id="history-chart" viewBox="0 0 720 150"></svg>
<script src="http://127.0.0.1:{}/static/history-chart.js"></script></body></html>"#,
        stack.app_port
    );
    browser.goto(&pages.page("/quiet", &quiet));
    browser.wait_for(
        "var e = document.querySelector('#history-chart .empty'); return e ? e.textContent : null;",
        &json!("Nobody here in the last 24 hours yet"),
        LIMIT,
    );
}

#[test]
fn every_script_the_service_serves_parses() {
    let stack = Stack::start();
    let (pinned_path, _) = pinned(&stack);
    let dir = std::env::temp_dir().join(format!("lu-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (path, file) in [
        (
            "/liveuser.js?siteId=a&page=hash&pageGroups=/u/*&lang=de",
            "loader.js",
        ),
        ("/init-liveuser.js", "init.js"),
        (pinned_path.as_str(), "pinned.js"),
        ("/liveuser.mjs", "module.mjs"),
    ] {
        let body = stack.http("GET", path, &[], b"");
        assert_eq!(body.status, 200, "{path}");
        std::fs::write(dir.join(file), body.text()).expect("script");
        let checked = std::process::Command::new("node")
            .arg("--check")
            .arg(dir.join(file))
            .output()
            .expect("node runs");
        assert!(
            checked.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_site_id_is_told_to_the_page_not_left_loading() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><div id="liveuser">Loading...</div>
<script>window.errors = []; window.addEventListener('liveuser:error', function (e) {{ window.errors.push(e.detail.error); }});</script>
<script defer src="http://127.0.0.1:{}/liveuser.js?siteId=not%20a%20site"></script></body></html>"#,
        stack.app_port
    );
    browser.goto(&pages.page("/bad-id", &html));
    browser.wait_for(COUNT, &json!("Invalid site id"), LIMIT);
    assert_eq!(
        browser.eval("return window.errors;"),
        json!(["invalid_site_id"])
    );
    // Any other client is answered the 400.
    let plain = stack.http("GET", "/liveuser.js?siteId=not%20a%20site", &[], b"");
    assert_eq!(plain.status, 400);
    assert_eq!(plain.json()["error"], "invalid_site_id");
}
