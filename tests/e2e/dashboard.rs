//! The owner's dashboard on the real stack: readers from three loopback addresses that
//! fastly.toml's geolocation places in three countries, a registered site's dashboard key,
//! the page in headless Chromium following the live stream Fanout (Pushpin) holds, and the
//! screenshots in docs/ taken from it (light, dark, phone).

use std::net::Ipv4Addr;
use std::time::Duration;

use liveuser_testkit::browser::Browser;
use liveuser_testkit::client::Client;
use liveuser_testkit::paths::project_root;
use liveuser_testkit::stack::Stack;
use serde_json::{json, Value};

const JAPAN: Option<Ipv4Addr> = Some(Ipv4Addr::new(127, 0, 0, 2));
const BRAZIL: Option<Ipv4Addr> = Some(Ipv4Addr::new(127, 0, 0, 3));

fn reader(stack: &Stack, page: &str, from: Option<Ipv4Addr>) -> Client {
    let url = stack.ws_url(&format!("siteId=news&page={page}"));
    Client::try_connect_as(&url, None, from).expect("a reader connects")
}

/// What the dashboard page shows: its state, count, and the rows of a ranked list.
fn rows(browser: &Browser, list: &str) -> Value {
    browser.eval(&format!(
        "return Array.from(document.querySelectorAll('#{list} li')).map(li => li.textContent.trim());"
    ))
}

#[test]
fn an_owner_watches_readers_by_country_and_page_live() {
    let stack = Stack::start();
    let admin = format!("Bearer {}", stack.admin_token);
    let added = stack.http(
        "PUT",
        "/admin/sites/news",
        &[("Authorization", &admin)],
        b"{}",
    );
    assert_eq!(added.status, 200, "{}", added.text());
    let key = added.json()["dashboardKey"]
        .as_str()
        .expect("a dashboard key made with the site")
        .to_string();
    // A wrong key or none opens nothing, and says why.
    for auth in ["", "Bearer 0123456789abcdef0123456789abcdef"] {
        let headers: Vec<(&str, &str)> = [("Authorization", auth)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let refused = stack.http("GET", "/dashboard/news/data", &headers, b"");
        assert_eq!(refused.status, 401, "{}", refused.text());
        assert_eq!(refused.json()["error"], "unauthorized");
    }
    // A browser cannot place itself: the headers only the service may set are dropped.
    let url = stack.ws_url("siteId=news&page=/live/launch");
    let forged = [("LiveUser-Country", "FR"), ("Meta-Country", "FR")];
    let _sweden = [
        reader(&stack, "/live/launch", None),
        Client::try_connect_with(&url, &forged, None).expect("a reader connects"),
    ];
    let _japan = reader(&stack, "/", JAPAN);
    let _brazil = reader(&stack, "/live/launch", BRAZIL);

    let browser = Browser::start();
    browser.resize(1280, 900);
    let url = format!(
        "http://127.0.0.1:{}/dashboard/news#key={key}",
        stack.app_port
    );
    browser.goto(&url);
    let wait = Duration::from_secs(20);
    browser.wait_for("return document.body.dataset.state;", &json!("live"), wait);
    browser.wait_for("return document.body.dataset.count;", &json!("4"), wait);
    // The key left the address bar at once.
    assert_eq!(browser.eval("return location.hash;"), json!(""));
    let countries = rows(&browser, "countries");
    assert_eq!(countries[0], json!("🇸🇪 Sweden2"), "{countries}");
    let rest: Vec<&str> = countries.as_array().expect("rows")[1..]
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rest, ["🇧🇷 Brazil1", "🇯🇵 Japan1"], "ties by code");
    browser.wait_for(
        "return document.querySelector('#pages li .name').textContent;",
        &json!("/live/launch"),
        wait,
    );

    // Another reader arrives: the page hears it from the stream, without a reload.
    browser.eval("window.notReloaded = true; return 1;");
    let mut late = reader(&stack, "/", JAPAN);
    browser.wait_for("return document.body.dataset.count;", &json!("5"), wait);
    assert_eq!(
        browser.eval("return window.notReloaded === true;"),
        json!(true)
    );
    // Japan and Sweden tie at two: by code, Japan first.
    assert_eq!(rows(&browser, "countries")[0], json!("🇯🇵 Japan2"));
    let docs = project_root().join("docs");
    browser.screenshot(&docs.join("dashboard.png"));
    late.close(1000);
    browser.wait_for("return document.body.dataset.count;", &json!("4"), wait);

    // The same page in dark, and at a phone's width with nothing wider than the screen.
    browser.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    );
    let background = browser.eval("return getComputedStyle(document.body).backgroundColor;");
    assert_eq!(background, json!("rgb(15, 18, 22)"), "dark colours");
    browser.screenshot(&docs.join("dashboard-dark.png"));
    browser.cdp("Emulation.setEmulatedMedia", json!({"features": []}));
    browser.resize(390, 844);
    browser.wait_for(
        "return document.documentElement.scrollWidth <= window.innerWidth;",
        &json!(true),
        wait,
    );
    browser.screenshot(&docs.join("dashboard-phone.png"));

    // A wrong key in the address: the page asks for one, and shows nothing of the site.
    browser.eval("sessionStorage.clear(); return 1;");
    browser.goto(&format!(
        "http://127.0.0.1:{}/dashboard/news#key=wrong",
        stack.app_port
    ));
    browser.wait_for(
        "return document.body.dataset.state;",
        &json!("locked"),
        wait,
    );
    assert_eq!(
        browser.eval("return document.getElementById('unlock-error').textContent;"),
        json!("wrong dashboard key")
    );
    assert_eq!(
        browser.eval("return document.getElementById('count').textContent;"),
        json!("–")
    );
    // The key never reached a log line: only the page's path did.
    assert!(
        !stack.app_log().contains(&key),
        "a dashboard key in the log"
    );
}
