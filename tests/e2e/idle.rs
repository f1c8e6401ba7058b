//! Idle tabs in a real browser: with `countIdle=false` a tab hidden for longer than `idleAfter`
//! stops counting and comes back when shown; by default a hidden tab keeps counting.
//!
//! A tab is hidden by minimizing its browser window (WebDriver's minimize): Chromium then
//! reports `document.visibilityState` as `hidden` and fires `visibilitychange`, as for a
//! background tab, with nothing of the page's own overridden. (A frozen page, CDP's
//! `Page.setWebLifecycleState`, runs no script at all, and focus emulation leaves it visible.)

use std::time::Duration;

use serde_json::{json, Value};

use liveuser_testkit::browser::{Browser, PageServer};
use liveuser_testkit::stack::Stack;
use liveuser_testkit::wait::eventually;

const LIMIT: Duration = Duration::from_secs(30);
const COUNT: &str = "return document.getElementById('liveuser').textContent;";
const STATUS: &str = "return LiveUser.state().status;";
const HIDDEN: &str = "return document.visibilityState;";
/// The shortest `idleAfter` the loader takes, in seconds.
const IDLE_AFTER: u64 = 5;

/// A page embedding the widget with `query`; `head` runs first.
fn embed(stack: &Stack, query: &str, head: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>t</title><link rel="icon" href="data:,">{head}</head><body><div id="liveuser">Loading...</div>
<script src="http://127.0.0.1:{}/liveuser.js?{query}"></script></body></html>"#,
        stack.app_port
    )
}

/// Records every count the page is told, in `window.seen`.
const RECORD_COUNTS: &str = r#"<script>
window.seen = [];
document.addEventListener("liveuser:update", function (e) { window.seen.push(e.detail.count); });
</script>"#;

fn online(stack: &Stack, site: &str) -> Value {
    stack.get_json(&format!("/api/online/{site}"))["online"].clone()
}

fn hide(browser: &Browser) {
    browser.minimize();
    browser.wait_for(HIDDEN, &json!("hidden"), LIMIT);
}

fn show(browser: &Browser) {
    browser.restore();
    browser.wait_for(HIDDEN, &json!("visible"), LIMIT);
}

#[test]
fn a_tab_hidden_past_idle_after_stops_counting_unless_idle_tabs_count() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let (keeper, idler) = (Browser::start(), Browser::start());
    // The same short idleAfter on both pages: only countIdle differs.
    let keeps = pages.page("/keeps", &embed(&stack, "siteId=idle&idleAfter=5", ""));
    let idles = pages.page(
        "/idles",
        &embed(
            &stack,
            "siteId=idle&idleAfter=5&countIdle=false",
            RECORD_COUNTS,
        ),
    );
    keeper.goto(&keeps);
    idler.goto(&idles);
    keeper.wait_for(COUNT, &json!("2"), LIMIT);
    idler.wait_for(COUNT, &json!("2"), LIMIT);
    idler.eval("window.seen = [];");
    assert_eq!(
        idler.eval("var c = LiveUser.config(); return [c.countIdle, c.idleAfter];"),
        json!([false, 5])
    );

    // By default a hidden tab keeps counting, well past idleAfter.
    hide(&keeper);
    std::thread::sleep(Duration::from_secs(IDLE_AFTER * 2));
    assert_eq!(idler.eval(COUNT), json!("2"));
    assert_eq!(keeper.eval(STATUS), json!("live"));
    show(&keeper);
    assert_eq!(
        idler.eval("return window.seen.indexOf(1);"),
        json!(-1),
        "the hidden tab never left"
    );

    // With countIdle=false: still counted just after hiding, gone once hidden for idleAfter.
    hide(&idler);
    std::thread::sleep(Duration::from_secs(IDLE_AFTER / 2));
    assert_eq!(keeper.eval(COUNT), json!("2"), "gone before idleAfter");
    keeper.wait_for(COUNT, &json!("1"), LIMIT);
    assert!(eventually(LIMIT, || online(&stack, "idle") == json!(1)));
    // The idle tab keeps its last count, and says it is idle.
    assert_eq!(idler.eval(STATUS), json!("idle"));
    assert_eq!(idler.eval(COUNT), json!("2"));

    // Shown again: counted again, with the fresh count.
    show(&idler);
    keeper.wait_for(COUNT, &json!("2"), LIMIT);
    idler.wait_for(STATUS, &json!("live"), LIMIT);
    idler.wait_for(COUNT, &json!("2"), LIMIT);
}

#[test]
fn a_browsers_tabs_stop_counting_when_the_last_of_them_goes_idle() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let (reader, tabs) = (Browser::start(), Browser::start());
    let url = pages.page(
        "/group",
        &embed(
            &stack,
            "siteId=group&idleAfter=5&countIdle=false",
            RECORD_COUNTS,
        ),
    );
    reader.goto(&url);
    reader.wait_for(COUNT, &json!("1"), LIMIT);
    // Two tabs of one browser, one reader: the first holds the shared connection. (Each in a
    // window of its own, so that each can be hidden alone.)
    tabs.goto(&url);
    let first = tabs.current_tab();
    tabs.wait_for(COUNT, &json!("2"), LIMIT);
    tabs.new_window();
    tabs.goto(&url);
    let second = tabs.current_tab();
    tabs.wait_for(COUNT, &json!("2"), LIMIT);
    reader.eval("window.seen = [];");

    // The holding tab goes idle: it hands the connection over, and nobody sees a dip.
    tabs.switch_to(&first);
    hide(&tabs);
    tabs.wait_for(STATUS, &json!("idle"), LIMIT);
    tabs.switch_to(&second);
    tabs.wait_for(STATUS, &json!("live"), LIMIT);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(reader.eval("return window.seen.indexOf(1);"), json!(-1));
    assert_eq!(tabs.eval(COUNT), json!("2"));
    assert_eq!(
        stack.app_log_lines("events=OPEN").len(),
        3,
        "the second tab took the connection over"
    );

    // The last tab goes idle too: the browser stops counting.
    hide(&tabs);
    reader.wait_for(COUNT, &json!("1"), LIMIT);
    // One tab shown again: the browser is back.
    tabs.switch_to(&first);
    show(&tabs);
    reader.wait_for(COUNT, &json!("2"), LIMIT);
    tabs.wait_for(STATUS, &json!("live"), LIMIT);
}

#[test]
fn a_stream_goes_idle_with_its_leave_beacon_and_comes_back() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let (reader, idler) = (Browser::start(), Browser::start());
    let url = pages.page(
        "/stream",
        &embed(&stack, "siteId=streams&idleAfter=5&countIdle=false", ""),
    );
    reader.goto(&url);
    idler.goto(&pages.page(
        "/idle-stream",
        &embed(
            &stack,
            "siteId=streams&idleAfter=5&countIdle=false&transport=sse",
            "",
        ),
    ));
    reader.wait_for(COUNT, &json!("2"), LIMIT);
    hide(&idler);
    reader.wait_for(COUNT, &json!("1"), LIMIT);
    assert_eq!(stack.app_log_lines("events=SSE-LEAVE").len(), 1);
    show(&idler);
    reader.wait_for(COUNT, &json!("2"), LIMIT);
    idler.wait_for(STATUS, &json!("live"), LIMIT);
}
