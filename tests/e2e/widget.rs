//! The widget in a real browser: headless Chromium loading pages that embed `/liveuser.js`
//! from the local stack, as customers' pages do.

use std::time::Duration;

use serde_json::{json, Value};

use liveuser_testkit::browser::{Browser, PageServer};
use liveuser_testkit::paths::project_root;
use liveuser_testkit::stack::{Stack, StackOptions};
use liveuser_testkit::wait::eventually;

const LIMIT: Duration = Duration::from_secs(30);
const COUNT: &str = "var e = document.getElementById('liveuser'); return e ? e.textContent : null;";
const TOTAL: &str = "var e = document.getElementById('liveuser_totalvisits'); return e ? e.getAttribute('data-total-count') : null;";

/// A page embedding the widget with `query`, optionally with extra head script and body.
fn embed(stack: &Stack, query: &str, head: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>t</title><link rel="icon" href="data:,">{head}</head><body>{body}
<script src="http://127.0.0.1:{}/liveuser.js?{query}"></script></body></html>"#,
        stack.app_port
    )
}

/// Counts WebSocket constructions, for pages that must not reconnect in a loop.
const COUNT_SOCKETS: &str = r#"<script>
window.socketsOpened = 0;
var RealWebSocket = window.WebSocket;
window.WebSocket = function (url) { window.socketsOpened += 1; return new RealWebSocket(url); };
window.WebSocket.prototype = RealWebSocket.prototype;
</script>"#;

const COUNTER: &str = r#"<div id="liveuser">Loading...</div>"#;

#[test]
fn pages_on_one_site_count_each_other_and_other_sites_do_not() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    // Tabs counted as the original counts them (by default one browser counts once: below).
    let a_url = pages.page(
        "/a",
        &embed(&stack, "siteId=tabs&countTabs=true", "", COUNTER),
    );
    let other_url = pages.page(
        "/other",
        &embed(&stack, "siteId=elsewhere&countTabs=true", "", COUNTER),
    );

    browser.goto(&a_url);
    let first = browser.current_tab();
    browser.wait_for(COUNT, &json!("1"), LIMIT);

    browser.new_tab();
    browser.goto(&a_url);
    browser.wait_for(COUNT, &json!("2"), LIMIT);
    let second = browser.current_tab();
    browser.switch_to(&first);
    browser.wait_for(COUNT, &json!("2"), LIMIT);

    // A page on another site sees only itself, and changes nothing here.
    browser.new_tab();
    browser.goto(&other_url);
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    browser.switch_to(&first);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(browser.eval(COUNT), json!("2"));

    // Closing the second tab brings the first back to 1.
    browser.switch_to(&second);
    browser.close_tab();
    browser.switch_to(&first);
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    assert_eq!(
        browser.eval("return document.getElementById('liveuser').getAttribute('data-live-count');"),
        json!("1")
    );
}

/// Records every count a page is told, in `window.seen`.
const RECORD_COUNTS: &str = r#"<script>
window.seen = [];
document.addEventListener("liveuser:update", function (e) { window.seen.push(e.detail.count); });
</script>"#;

const TOTAL_ELEMENT: &str = r#"<div id="liveuser_totalvisits"></div>"#;

/// Every tab of `browser` in `handles` shows `count`.
fn all_show(browser: &Browser, handles: &[String], count: &str) {
    for handle in handles {
        browser.switch_to(handle);
        browser.wait_for(COUNT, &json!(count), LIMIT);
    }
}

#[test]
fn tabs_of_one_browser_count_once_and_the_holder_hands_over_without_a_dip() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let (one, other) = (Browser::start(), Browser::start());
    let body = format!("{COUNTER}{TOTAL_ELEMENT}");
    let url = pages.page(
        "/people",
        &embed(
            &stack,
            "siteId=people&enableTotalCount=true",
            RECORD_COUNTS,
            &body,
        ),
    );

    // Three tabs of one browser: one person.
    one.goto(&url);
    one.wait_for(COUNT, &json!("1"), LIMIT);
    let mut handles = vec![one.current_tab()];
    for _ in 0..2 {
        one.new_tab();
        one.goto(&url);
        handles.push(one.current_tab());
    }
    all_show(&one, &handles, "1");
    // A second browser: two people; every tab of the first says so.
    other.goto(&url);
    other.wait_for(COUNT, &json!("2"), LIMIT);
    all_show(&one, &handles, "2");
    // Four page views, one visit each, though only two sockets carried them.
    other.wait_for(
        "return document.getElementById('liveuser_totalvisits').getAttribute('data-total-count');",
        &json!("4"),
        LIMIT,
    );
    assert_eq!(
        stack.app_log_lines("events=OPEN").len(),
        2,
        "one socket per browser"
    );

    // The tab holding the first browser's socket closes: another takes over, and nobody sees
    // the count dip.
    other.eval("window.seen = []; return true;");
    one.switch_to(&handles[0]);
    one.close_tab();
    let handles = handles.split_off(1);
    std::thread::sleep(Duration::from_secs(3));
    all_show(&one, &handles, "2");
    assert_eq!(other.eval(COUNT), json!("2"));
    let seen = other.eval("return window.seen;");
    assert!(
        seen.as_array().is_some_and(|s| s.iter().all(|c| c == 2)),
        "the other browser saw {seen}"
    );
    // The tab that took over holds a live socket: the other browser leaving reaches it.
    other.eval("window.LiveUser.destroy(); return true;");
    all_show(&one, &handles, "1");
    assert_eq!(
        stack.app_log_lines("events=OPEN").len(),
        3,
        "the new holder opened one socket"
    );
}

const PAGE_COUNT: &str =
    "var e = document.getElementById('liveuser_page'); return e ? e.textContent : null;";
const PAGE_ELEMENT: &str = r#"<div id="liveuser_page"></div>"#;

/// Every tab of `browser` in `handles` shows `count` for the site and `page` for its page.
fn all_show_with_page(browser: &Browser, handles: &[(&String, &str)], count: &str) {
    for (handle, page) in handles {
        browser.switch_to(handle);
        browser.wait_for(COUNT, &json!(count), LIMIT);
        browser.wait_for(PAGE_COUNT, &json!(page), LIMIT);
    }
}

#[test]
fn readers_see_their_pages_count_and_a_single_page_apps_navigation_moves_it() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let html = embed(
        &stack,
        "siteId=pages&page=auto",
        "",
        &format!("{COUNTER}{PAGE_ELEMENT}"),
    );
    let docs = pages.page("/docs", &html);
    let blog = pages.page("/blog", &html);
    // Two readers of /docs, one of /blog (each counting its page: tabs do not share then).
    browser.goto(&docs);
    let first = browser.current_tab();
    browser.new_tab();
    browser.goto(&docs);
    let second = browser.current_tab();
    browser.new_tab();
    browser.goto(&blog);
    let third = browser.current_tab();
    all_show_with_page(
        &browser,
        &[(&first, "2"), (&second, "2"), (&third, "1")],
        "3",
    );
    // The /blog reader's app navigates to /docs: it moves there.
    browser.switch_to(&third);
    browser.eval("history.pushState({}, '', '/docs'); return true;");
    all_show_with_page(
        &browser,
        &[(&first, "3"), (&second, "3"), (&third, "3")],
        "3",
    );
    // And back (popstate).
    browser.switch_to(&third);
    browser.eval("history.back(); return true;");
    all_show_with_page(
        &browser,
        &[(&first, "2"), (&second, "2"), (&third, "1")],
        "3",
    );
    // The API answers for a page too (from the snapshot the broadcasts store).
    let online = stack.get_json("/api/online/pages?page=/docs");
    assert_eq!(
        (online["online"].clone(), online["pageOnline"].clone()),
        (json!(3), json!(2))
    );
    // The page itself is stored nowhere and logged nowhere: only its id.
    assert!(stack.app_log_lines("/docs").is_empty());
    assert!(stack.app_log_lines("/blog").is_empty());
}

/// Takes WebSocket away from a page, as a network that blocks it would leave the client
/// without one.
const NO_WEBSOCKET: &str = "<script>window.WebSocket = undefined;</script>";

#[test]
fn a_page_without_websocket_counts_over_sse_and_leaves_when_its_tab_closes() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let (sockets, streams) = (Browser::start(), Browser::start());
    let with_socket = pages.page("/socket", &embed(&stack, "siteId=mixed", "", COUNTER));
    let with_stream = pages.page(
        "/stream",
        &embed(&stack, "siteId=mixed", NO_WEBSOCKET, COUNTER),
    );
    sockets.goto(&with_socket);
    sockets.wait_for(COUNT, &json!("1"), LIMIT);
    // The second browser keeps a blank tab, so closing the stream's tab leaves it running.
    let blank = streams.current_tab();
    streams.new_tab();
    streams.goto(&with_stream);
    let stream_tab = streams.current_tab();
    streams.wait_for(COUNT, &json!("2"), LIMIT);
    sockets.wait_for(COUNT, &json!("2"), LIMIT);
    assert_eq!(
        stack.app_log_lines("events=SSE-OPEN").len(),
        1,
        "the second page reads a stream"
    );
    // Closing the stream's tab: its beacon takes its presence away at once.
    streams.switch_to(&stream_tab);
    streams.close_tab();
    streams.switch_to(&blank);
    sockets.wait_for(COUNT, &json!("1"), LIMIT);
    assert_eq!(stack.app_log_lines("events=SSE-LEAVE").len(), 1);
}

#[test]
fn below_the_privacy_floor_the_widget_says_fewer_than_the_floor() {
    let stack =
        Stack::start_with(StackOptions::default().with_site("hushed", r#"{"minCount": 3}"#));
    let pages = PageServer::start();
    let browser = Browser::start();
    let url = pages.page(
        "/hushed",
        &embed(&stack, "siteId=hushed&countTabs=true", "", COUNTER),
    );
    browser.goto(&url);
    browser.wait_for(COUNT, &json!("fewer than 3"), LIMIT);
    let mut handles = vec![browser.current_tab()];
    for _ in 0..2 {
        browser.new_tab();
        browser.goto(&url);
        handles.push(browser.current_tab());
    }
    // At the floor, the number itself.
    all_show(&browser, &handles, "3");
}

#[test]
fn a_site_the_service_does_not_serve_says_so_and_stops_trying() {
    let stack =
        Stack::start_with(StackOptions::default().with_config("unregistered_sites", "refuse"));
    let pages = PageServer::start();
    let browser = Browser::start();
    let listen = r#"<script>
window.errors = [];
window.addEventListener('liveuser:error', function (e) { window.errors.push(e.detail); });
</script>"#;
    let head = format!("{COUNT_SOCKETS}{listen}");
    let url = pages.page("/unknown", &embed(&stack, "siteId=nobody", &head, COUNTER));
    browser.goto(&url);
    browser.wait_for(COUNT, &json!("Unknown site"), LIMIT);
    let error = browser.eval("return window.errors;");
    assert_eq!(error[0]["error"], "unknown_site", "{error}");
    assert_eq!(error[0]["siteId"], "nobody");
    let marked =
        browser.eval("return document.getElementById('liveuser').getAttribute('data-live-error');");
    assert_eq!(marked, json!("unknown_site"));
    // No reconnect loop: it stopped trying.
    let opened = browser.eval("return window.socketsOpened;");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(browser.eval("return window.socketsOpened;"), opened);
}

#[test]
fn count_tabs_counts_every_tab() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let url = pages.page(
        "/tabs",
        &embed(&stack, "siteId=per-tab&countTabs=true", "", COUNTER),
    );
    browser.goto(&url);
    let mut handles = vec![browser.current_tab()];
    for _ in 0..2 {
        browser.new_tab();
        browser.goto(&url);
        handles.push(browser.current_tab());
    }
    all_show(&browser, &handles, "3");
}

#[test]
fn the_total_count_embed_shows_totals_and_fires_update_events() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let listen = r#"<script>
window.updates = [];
document.addEventListener('liveuser:update', function (e) { window.updates.push(e.detail); });
</script>"#;
    let body =
        r#"<div id="liveuser">Loading...</div><div id="liveuser_totalvisits">Loading...</div>"#;
    let url = pages.page(
        "/totals",
        &embed(
            &stack,
            "siteId=totals-page&enableTotalCount=true",
            listen,
            body,
        ),
    );
    browser.goto(&url);
    browser.wait_for(TOTAL, &json!("1"), LIMIT);
    browser.goto(&url);
    browser.wait_for(TOTAL, &json!("2"), LIMIT);
    assert_eq!(
        browser.eval("return document.getElementById('liveuser_totalvisits').textContent;"),
        json!("2")
    );
    let last = browser.eval("return window.updates[window.updates.length - 1];");
    assert_eq!(
        last,
        json!({"count": 1, "totalCount": 2, "siteId": "totals-page"})
    );
    // The API answers what the broadcast stores once it has published.
    assert!(eventually(LIMIT, || stack
        .get_json("/api/total/totals-page")["totalCount"]
        == 2));
}

#[test]
fn a_page_with_only_the_total_element_works() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let body = r#"<span id="liveuser_totalvisits">Loading...</span>"#;
    let url = pages.page(
        "/only-total",
        &embed(&stack, "siteId=only-total&enableTotalCount=1", "", body),
    );
    browser.goto(&url);
    browser.wait_for(TOTAL, &json!("1"), LIMIT);
    assert!(browser.console().iter().all(|e| e["level"] != "SEVERE"));
    // The original's number format.
    let formatted = browser
        .eval("return [999, 1000, 1234, 999999, 1000000, 3456789].map(LiveUser.formatNumber);");
    assert_eq!(formatted, json!(["999", "1K", "1.2K", "1M", "1M", "3.5M"]));
}

#[test]
fn a_bad_reconnect_delay_falls_back_instead_of_looping() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    // Nothing listens on the server URL, so the client keeps reconnecting.
    let closed = liveuser_testkit::process::free_port();
    let query = format!("siteId=loop&reconnectDelay=abc&serverUrl=ws://127.0.0.1:{closed}");
    let url = pages.page("/loop", &embed(&stack, &query, COUNT_SOCKETS, COUNTER));
    browser.goto(&url);
    assert_eq!(
        browser.eval("return LiveUser.config().reconnectDelay;"),
        json!(3000)
    );
    std::thread::sleep(Duration::from_millis(2500));
    let opened = browser
        .eval("return window.socketsOpened;")
        .as_u64()
        .unwrap_or(0);
    // The original reconnects every 0 ms here (hundreds of sockets); backoff from 3 s allows a few.
    assert!((1..=4).contains(&opened), "{opened} sockets in 2.5 s");
}

#[test]
fn a_foreign_base_url_loads_nothing_from_it() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let query = "siteId=safe&baseUrl=https://evil.example";
    let url = pages.page("/safe", &embed(&stack, query, COUNT_SOCKETS, COUNTER));
    browser.goto(&url);
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    // Every resource the page fetched, as host + path (the script's own query names evil.example).
    let resources = browser.eval(
        "return performance.getEntriesByType('resource').map(function (r) { var u = new URL(r.name); return u.host + u.pathname; });",
    );
    let names: Vec<&str> = resources
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("evil.example")),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/liveuser.js")).count(),
        1,
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| !n.ends_with("/init-liveuser.js")),
        "one request: {names:?}"
    );
}

#[test]
fn loading_the_script_twice_opens_one_connection() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let twice = format!(
        "{COUNTER}<script src=\"http://127.0.0.1:{}/liveuser.js?siteId=twice\"></script>",
        stack.app_port
    );
    let url = pages.page(
        "/twice",
        &embed(&stack, "siteId=twice", COUNT_SOCKETS, &twice),
    );
    browser.goto(&url);
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    assert_eq!(browser.eval("return window.socketsOpened;"), json!(1));
}

#[test]
fn the_demo_page_renders_live_with_no_console_errors() {
    let stack = Stack::start();
    let browser = Browser::start();
    browser.goto(&format!("http://127.0.0.1:{}/", stack.app_port));
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    browser.wait_for(TOTAL, &json!("1"), LIMIT);
    let snippet = browser.eval("return document.getElementById('snippet').textContent;");
    let expected = format!(
        "http://127.0.0.1:{}/liveuser.js?siteId=your-site",
        stack.app_port
    );
    assert!(
        snippet.as_str().is_some_and(|s| s.contains(&expected)),
        "{snippet}"
    );
    // The chart of the last 24 hours: a line per run of known minutes, and today's peak.
    browser.wait_for(
        "var c = document.getElementById('history-chart'); return c ? c.getAttribute('data-points') : null;",
        &json!("1440"),
        LIMIT,
    );
    browser.wait_for(
        "return document.querySelectorAll('#history-chart polyline').length > 0;",
        &json!(true),
        LIMIT,
    );
    browser.wait_for(
        "return document.getElementById('today-peak').textContent;",
        &json!("1"),
        LIMIT,
    );
    // The badge loaded, and is an image.
    browser.wait_for(
        "var b = document.getElementById('badge'); return b.complete && b.naturalWidth > 0;",
        &json!(true),
        LIMIT,
    );
    let errors: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console: {errors:?}");
    browser.screenshot(&project_root().join("test-artifacts/demo.png"));
}

#[test]
fn the_demo_page_fits_a_phone_screen() {
    let stack = Stack::start();
    let browser = Browser::start();
    browser.resize(390, 844);
    browser.goto(&format!("http://127.0.0.1:{}/", stack.app_port));
    browser.wait_for(COUNT, &json!("1"), LIMIT);
    assert!(browser
        .eval("return window.innerWidth;")
        .as_u64()
        .is_some_and(|w| w <= 400));
    // Nothing wider than the screen: long snippets and the table scroll inside their boxes.
    let overflow = browser.eval("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "page overflows by {overflow}px"
    );
    browser.screenshot(&project_root().join("test-artifacts/demo-phone.png"));
}
