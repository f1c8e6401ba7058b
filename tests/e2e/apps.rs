//! The widget in an app: what page code reads and hears (state, subscribe, status), several
//! elements, the page's language and words, screen readers, hash routes and page groups. Real
//! headless Chromium against the real local stack.

use std::time::Duration;

use serde_json::{json, Value};

use liveuser_testkit::browser::{Browser, PageServer};
use liveuser_testkit::paths::{project_root, web_package};
use liveuser_testkit::stack::Stack;

const LIMIT: Duration = Duration::from_secs(30);
const STATE: &str = "return window.LiveUser ? LiveUser.state() : null;";

/// A page loading `/liveuser.js?{query}` after `head` and `body`, in language `lang`.
fn page(stack: &Stack, lang: &str, query: &str, head: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>t</title><link rel="icon" href="data:,">{head}</head><body>{body}
<script defer src="http://127.0.0.1:{}/liveuser.js?{query}"></script></body></html>"#,
        stack.app_port
    )
}

/// Records every liveuser:status event in window.statuses.
const STATUSES: &str = r#"<script>
window.statuses = [];
document.addEventListener('liveuser:status', function (e) { window.statuses.push(e.detail.status); });
</script>"#;

fn state_field(browser: &Browser, field: &str) -> Value {
    browser.eval(&format!(
        "return window.LiveUser ? LiveUser.state().{field} : null;"
    ))
}

#[test]
fn an_app_reads_the_state_subscribes_late_and_hears_the_status() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let url = pages.page(
        "/app",
        &page(
            &stack,
            "en",
            "siteId=apps&countTabs=true&enableTotalCount=true",
            STATUSES,
            "",
        ),
    );
    browser.goto(&url);
    browser.wait_for(
        "return window.LiveUser ? LiveUser.state().count : null;",
        &json!(1),
        LIMIT,
    );
    let state = browser.eval(STATE);
    assert_eq!(state["status"], "live", "{state}");
    assert_eq!(state["siteId"], "apps");
    browser.wait_for("return LiveUser.state().total;", &json!(1), LIMIT);
    assert_eq!(state["floor"], Value::Null);
    assert_eq!(
        browser.eval("return window.statuses;"),
        json!(["connecting", "live"])
    );
    // A component mounting now gets the state at once, then every change, until it leaves.
    browser.eval(
        "window.seen = []; window.kept = [];
         window.stop = LiveUser.subscribe(function (s) { window.seen.push(s.count); });
         LiveUser.subscribe(function (s) { window.kept.push(s.count); }); return null;",
    );
    assert_eq!(
        browser.eval("return window.seen;"),
        json!([1]),
        "replayed at once"
    );
    browser.eval("window.stop(); return null;");
    let first = browser.current_tab();
    browser.new_tab();
    browser.goto(&url);
    browser.wait_for(
        "return window.LiveUser ? LiveUser.state().count : null;",
        &json!(2),
        LIMIT,
    );
    browser.switch_to(&first);
    browser.wait_for(
        "return window.kept[window.kept.length - 1];",
        &json!(2),
        LIMIT,
    );
    assert_eq!(
        browser.eval("return window.seen;"),
        json!([1]),
        "unsubscribed"
    );
}

#[test]
fn several_elements_show_what_each_asks_for_and_another_site_its_own() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let body = r#"<header><span id="head" data-liveuser></span></header>
<footer><span id="foot" data-liveuser="targets"></span> of <span id="visits" data-liveuser data-liveuser-show="total"></span>
<b id="other" data-liveuser="another-site">…</b></footer>"#;
    let url = pages.page(
        "/targets",
        &page(
            &stack,
            "en",
            "siteId=targets&enableTotalCount=true",
            "",
            body,
        ),
    );
    browser.goto(&url);
    for id in ["head", "foot", "visits"] {
        browser.wait_for(
            &format!("return document.getElementById('{id}').textContent;"),
            &json!("1"),
            LIMIT,
        );
    }
    // An element naming another site shows that site's count (this page reads it too).
    browser.wait_for(
        "return document.getElementById('other').textContent;",
        &json!("1"),
        LIMIT,
    );
    // No live region on the numbers: screen readers are not flooded.
    assert_eq!(
        browser.eval("return document.querySelectorAll('[aria-live], [role=status]').length;"),
        json!(0)
    );
}

#[test]
fn numbers_and_words_follow_the_language_and_the_pages_own_texts() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let french = pages.page(
        "/fr",
        &page(
            &stack,
            "fr",
            "siteId=words",
            "",
            r#"<div id="liveuser"></div>"#,
        ),
    );
    browser.goto(&french);
    browser.wait_for(
        "return document.getElementById('liveuser').textContent;",
        &json!("1"),
        LIMIT,
    );
    assert_eq!(
        browser.eval("return [1234, 2500000].map(LiveUser.formatNumber);"),
        json!(["1,2\u{a0}k", "2,5\u{a0}M"])
    );
    // The loader's lang wins over the page's.
    let german = pages.page(
        "/de",
        &page(
            &stack,
            "fr",
            "siteId=words&lang=de",
            "",
            r#"<div id="liveuser"></div>"#,
        ),
    );
    browser.goto(&german);
    browser.wait_for(
        "return document.getElementById('liveuser').textContent;",
        &json!("1"),
        LIMIT,
    );
    assert_eq!(
        browser.eval("return LiveUser.formatNumber(2500000);"),
        json!("2,5\u{a0}Mio.")
    );
    // The page's own words, here while the service cannot be reached.
    let own = format!(
        r#"<!doctype html><html lang="de"><head><meta charset="utf-8"><link rel="icon" href="data:,"><script>
window.LiveUserConfig = {{siteId: "words", serverUrl: "ws://127.0.0.1:9", reconnectDelay: 500,
  texts: {{connecting: "Verbinde …", reconnecting: "Erneuter Versuch …"}}}};
</script></head><body><div id="liveuser"></div>
<script src="http://127.0.0.1:{}/init-liveuser.js"></script></body></html>"#,
        stack.app_port
    );
    browser.goto(&pages.page("/own-words", &own));
    browser.wait_for(
        "return document.getElementById('liveuser').textContent;",
        &json!("Erneuter Versuch …"),
        LIMIT,
    );
    assert_eq!(state_field(&browser, "status"), json!("reconnecting"));
}

#[test]
fn screen_readers_hear_the_count_from_a_labelled_region_at_most_every_interval() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let url = pages.page(
        "/spoken",
        &page(
            &stack,
            "en",
            "siteId=spoken&countTabs=true&announce=5",
            "",
            r#"<div id="liveuser"></div>"#,
        ),
    );
    const REGION: &str = "var r = document.querySelector('[data-liveuser-announcer]'); return r ? [r.getAttribute('role'), r.getAttribute('aria-label'), r.textContent] : null;";
    browser.goto(&url);
    browser.wait_for(
        REGION,
        &json!(["status", "Readers online", "1 person here now"]),
        LIMIT,
    );
    let first = browser.current_tab();
    browser.new_tab();
    browser.goto(&url);
    browser.switch_to(&first);
    // Said again once the interval is up, with the count as it is then.
    browser.wait_for(
        REGION,
        &json!(["status", "Readers online", "2 people here now"]),
        LIMIT,
    );
}

#[test]
fn hash_routes_and_page_groups_count_as_one_page() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let body = r#"<div id="liveuser"></div><div id="liveuser_page"></div>"#;
    let url = pages.page(
        "/spa",
        &page(
            &stack,
            "en",
            "siteId=routes&countTabs=true&page=hash&pageGroups=/users/*",
            "",
            body,
        ),
    );
    const PAGE_COUNT: &str = "return document.getElementById('liveuser_page').textContent;";
    browser.goto(&format!("{url}#/users/7"));
    browser.wait_for(PAGE_COUNT, &json!("1"), LIMIT);
    assert_eq!(state_field(&browser, "page"), json!("/users/*"));
    let first = browser.current_tab();
    browser.new_tab();
    browser.goto(&format!("{url}#/users/9"));
    browser.wait_for(PAGE_COUNT, &json!("2"), LIMIT);
    let second = browser.current_tab();
    // The first tab's app routes elsewhere: its reader leaves the group.
    browser.switch_to(&first);
    browser.eval("location.hash = '#/about'; return null;");
    browser.wait_for("return LiveUser.state().page;", &json!("/about"), LIMIT);
    browser.wait_for(PAGE_COUNT, &json!("1"), LIMIT);
    browser.switch_to(&second);
    browser.wait_for(PAGE_COUNT, &json!("1"), LIMIT);
}

/// A recipe of docs/EMBEDDING.md: the `js` block whose first line is `// recipe: <name>`.
fn recipe(name: &str) -> String {
    let docs = std::fs::read_to_string(project_root().join("docs/EMBEDDING.md")).expect("docs");
    let marker = format!("// recipe: {name}\n");
    let start = docs.find(&marker).expect("the recipe is in the docs") + marker.len();
    let end = docs[start..].find("```").expect("the block ends") + start;
    docs[start..end].to_string()
}

/// A page running `recipe` as written, its imports mapped to the framework's global build
/// (`globals`: script files inlined first) and to the service's module; then `mount`.
fn recipe_page(
    stack: &Stack,
    globals: &[&str],
    shim: (&str, &str),
    recipe: &str,
    mount: &str,
) -> String {
    let scripts: String = globals
        .iter()
        .map(|file| {
            let code = std::fs::read_to_string(web_package(file))
                .unwrap_or_else(|e| panic!("{file}: {e} (scripts/setup --browser installs it)"));
            format!("<script>{code}</script>\n")
        })
        .collect();
    let imports = json!({"imports": {
        shim.0: format!("data:text/javascript,{}", shim.1),
        "liveuser-widget": format!("http://127.0.0.1:{}/liveuser.mjs", stack.app_port),
    }});
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
{scripts}<script type="importmap">{imports}</script>
<script type="module">
import LiveUser from "liveuser-widget";
// Count the subscriptions the component holds.
const subscribe = LiveUser.subscribe;
window.active = 0;
LiveUser.subscribe = (fn) => {{ window.active += 1; const stop = subscribe(fn); return () => {{ window.active -= 1; stop(); }}; }};
</script>
<script type="module">
{recipe}
{mount}
</script></head><body><div id="app"></div></body></html>"#
    )
}

const ONLINE_NOW: &str =
    "var e = document.querySelector('#app .online-now'); return e ? e.textContent : null;";

#[test]
fn the_react_recipe_renders_from_subscribe_and_unsubscribes_on_unmount() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let shim = (
        "react",
        "const R = window.React; export default R; export const { createElement, useEffect, useState } = R;",
    );
    let mount = "const root = window.ReactDOM.createRoot(document.getElementById('app'));
root.render(createElement(OnlineNow));
window.unmount = () => root.unmount();";
    let html = recipe_page(
        &stack,
        &[
            "react/umd/react.development.js",
            "react-dom/umd/react-dom.development.js",
        ],
        shim,
        &recipe("react"),
        mount,
    );
    browser.goto(&pages.page("/react", &html));
    browser.wait_for(ONLINE_NOW, &json!("1"), LIMIT);
    assert_eq!(browser.eval("return window.active;"), json!(1));
    browser.eval("window.unmount(); return null;");
    browser.wait_for("return window.active;", &json!(0), LIMIT);
    assert_eq!(browser.eval(ONLINE_NOW), Value::Null);
    let errors: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn the_vue_recipe_renders_from_subscribe_and_unsubscribes_on_unmount() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let shim = (
        "vue",
        "const V = window.Vue; export default V; export const { createApp, defineComponent, h, onMounted, onUnmounted, ref } = V;",
    );
    let mount = "const app = window.Vue.createApp(OnlineNow);
app.mount('#app');
window.unmount = () => app.unmount();";
    let html = recipe_page(
        &stack,
        &["vue/dist/vue.global.prod.js"],
        shim,
        &recipe("vue"),
        mount,
    );
    browser.goto(&pages.page("/vue", &html));
    browser.wait_for(ONLINE_NOW, &json!("1"), LIMIT);
    assert_eq!(browser.eval("return window.active;"), json!(1));
    browser.eval("window.unmount(); return null;");
    browser.wait_for("return window.active;", &json!(0), LIMIT);
    assert_eq!(browser.eval(ONLINE_NOW), Value::Null);
}

#[test]
fn the_package_packs_and_its_types_check_an_app_and_refuse_a_wrong_one() {
    let package = project_root().join("packages/liveuser");
    let packed = std::process::Command::new("npm")
        .args(["pack", "--dry-run", "--json"])
        .current_dir(&package)
        .output()
        .expect("npm runs");
    assert!(
        packed.status.success(),
        "{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let listing: Value = serde_json::from_slice(&packed.stdout).expect("npm's JSON");
    let mut files: Vec<String> = listing[0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str().map(String::from))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["README.md", "liveuser.d.ts", "liveuser.mjs", "package.json"]
    );
    // An app importing the package by name, as a bundler would.
    let dir = std::env::temp_dir().join(format!("lu-types-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("node_modules")).expect("temp dir");
    std::os::unix::fs::symlink(&package, dir.join("node_modules/liveuser-widget")).expect("link");
    let check = |source: &str| {
        std::fs::write(dir.join("app.ts"), source).expect("app.ts");
        std::process::Command::new(web_package("typescript/bin/tsc"))
            .args([
                "--noEmit", "--strict", "--target", "es2020", "--module", "es2020",
            ])
            .args([
                "--moduleResolution",
                "bundler",
                "--lib",
                "es2020,dom",
                "app.ts",
            ])
            .current_dir(&dir)
            .output()
            .expect("tsc runs")
    };
    let good = check(
        r#"import LiveUser, { subscribe, type State, type Status } from "liveuser-widget";
LiveUser.init({ siteId: "my-site", page: "hash", pageGroups: ["/users/*"], texts: { online: { one: "{n} Person", other: "{n} Personen" } } });
const stop: () => void = subscribe((state: State) => {
  const status: Status = state.status;
  const count: number | null = state.count;
  console.log(status, count, state.floor);
});
stop();
document.addEventListener("liveuser:status", (e) => console.log(e.detail.reason));
window.LiveUser.destroy();
"#,
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    let bad = check(
        r#"import LiveUser from "liveuser-widget";
LiveUser.init({ siteId: 3, transport: "carrier-pigeon" });
"#,
    );
    assert!(!bad.status.success(), "a wrong config must not type-check");
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(
        said.contains("TS2322") && said.contains("carrier-pigeon"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_sites_show_on_one_page_each_in_its_own_elements() {
    let stack = Stack::start();
    let pages = PageServer::start();
    let browser = Browser::start();
    let body = r#"<span id="liveuser"></span> <b id="also" data-liveuser></b>
<i id="other" data-liveuser="second-site"></i>"#;
    let both = pages.page(
        "/both",
        &page(&stack, "en", "siteId=first-site&countTabs=true", "", body),
    );
    let text = |id: &str| format!("return document.getElementById('{id}').textContent;");
    browser.goto(&both);
    for id in ["liveuser", "also", "other"] {
        browser.wait_for(&text(id), &json!("1"), LIMIT);
    }
    // A reader of the second site only: this page's second-site element counts them too.
    let first = browser.current_tab();
    browser.new_tab();
    let second_only = pages.page(
        "/second",
        &page(
            &stack,
            "en",
            "siteId=second-site&countTabs=true",
            "",
            r#"<div id="liveuser"></div>"#,
        ),
    );
    browser.goto(&second_only);
    browser.wait_for(&text("liveuser"), &json!("2"), LIMIT);
    browser.switch_to(&first);
    browser.wait_for(&text("other"), &json!("2"), LIMIT);
    assert_eq!(browser.eval(&text("liveuser")), json!("1"));
    assert_eq!(browser.eval(&text("also")), json!("1"));
    assert_eq!(
        browser.eval("return [LiveUser.state().siteId, LiveUser.state('second-site').count];"),
        json!(["first-site", 2])
    );
}
