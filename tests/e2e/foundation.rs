//! The foundation: handoff to Fanout, WebSocket-over-HTTP round trips, publishing, plain HTTP.

use std::time::{Duration, Instant};

use liveuser_testkit::client::{Client, Received};
use liveuser_testkit::stack::Stack;

/// Publishes to the site's channel until the client receives it: the subscription is in
/// place once the handshake completes, but nothing promises the order of the two.
fn publish_until_received(stack: &Stack, client: &mut Client, channel: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let content = format!("hello-{n}");
        assert_eq!(stack.publish(channel, &content), 200, "publish accepted");
        if let Some(text) = next_text_other_than_updates(client, Duration::from_millis(500)) {
            return text;
        }
    }
    panic!("nothing published to {channel} reached the client");
}

/// The next text message that is not one of the service's own count updates.
fn next_text_other_than_updates(client: &mut Client, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.recv(left) {
            Received::Text(text) if text.starts_with(r#"{"type":"update""#) => continue,
            Received::Text(text) => return Some(text),
            _ => return None,
        }
    }
}

#[test]
fn a_websocket_on_ws_receives_what_is_published_to_its_site_channel() {
    let stack = Stack::start();
    let mut a = Client::connect(&stack.ws_url("siteId=site-a"));
    let mut b = Client::connect(&stack.ws_url("siteId=site-b"));

    let got = publish_until_received(&stack, &mut a, "site:site-a");
    assert!(got.starts_with("hello-"), "got {got:?}");

    // The other site's client hears nothing of site-a, and gets its own channel's messages.
    let wait = Duration::from_secs(10);
    stack.publish("site:site-b", "for-b");
    assert_eq!(
        next_text_other_than_updates(&mut b, wait).as_deref(),
        Some("for-b")
    );
    stack.publish("site:site-a", "only-a");
    // (a may still get a late hello-N from the loop above before this one.)
    loop {
        match next_text_other_than_updates(&mut a, wait) {
            Some(text) if text == "only-a" => break,
            Some(text) => assert!(text.starts_with("hello-"), "a got {text:?}"),
            None => panic!("a never received only-a"),
        }
    }
    assert_eq!(
        next_text_other_than_updates(&mut b, Duration::from_millis(300)),
        None
    );

    // The app saw the handoff and the WebSocket-over-HTTP call back.
    assert!(
        !stack.app_log_lines("liveuser handoff path=/ws").is_empty(),
        "{}",
        stack.app_log()
    );
}

#[test]
fn a_missing_site_id_means_the_default_site() {
    let stack = Stack::start();
    let mut client = Client::connect(&stack.ws_url("clientId=abc"));
    let got = publish_until_received(&stack, &mut client, "site:default-site");
    assert!(got.starts_with("hello-"));
}

#[test]
fn a_clean_close_is_answered_with_a_close() {
    let stack = Stack::start();
    let mut client = Client::connect(&stack.ws_url("siteId=closing"));
    publish_until_received(&stack, &mut client, "site:closing");
    client.close(1000);
    match client.recv(Duration::from_secs(10)) {
        Received::Closed(code) => assert_eq!(code, Some(1000)),
        other => panic!("expected the close to be answered, got {other:?}"),
    }
}

#[test]
fn plain_http_routes_answer_clearly() {
    let stack = Stack::start();

    let ws = stack.http("GET", "/ws?siteId=a", &[], b"");
    assert_eq!(ws.status, 426);
    assert_eq!(ws.json()["error"], "upgrade_required");

    let index = stack.http("GET", "/", &[], b"");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("LiveUser"));
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    let css = stack.http("GET", "/static/style.css", &[], b"");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    let missing = stack.http("GET", "/nope", &[], b"");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not_found");
}

/// The wasm's custom sections' names (a wasm module is a magic number, a version, then
/// sections of an id and a LEB128 size; custom sections, id 0, start with their name).
fn custom_sections(wasm: &[u8]) -> Vec<String> {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        while let Some(&b) = bytes.get(*at) {
            *at += 1;
            value |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        value
    }
    let mut names = Vec::new();
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at);
        let end = at + size;
        if id == 0 {
            let mut name_at = at;
            let len = leb(wasm, &mut name_at);
            names.push(String::from_utf8_lossy(&wasm[name_at..name_at + len]).into_owned());
        }
        at = end;
    }
    names
}

#[test]
fn the_shipped_wasm_keeps_function_names_within_a_budget() {
    // 1 MiB until the SSE fallback, history, badges and per-page counts came in (1.05 MiB);
    // 1.25 MiB until the owner's dashboard (its page and script are in the binary), readers
    // by country and webhooks (dynamic backends) came in (1.33 MiB).
    const BUDGET: usize = 1536 * 1024;
    let wasm = std::fs::read(liveuser_testkit::paths::wasm_path()).expect("the built wasm");
    assert!(
        wasm.len() <= BUDGET,
        "{} bytes: over 1.5 MiB, strip the names again (Cargo.toml [profile.release] strip)",
        wasm.len()
    );
    assert!(
        custom_sections(&wasm).iter().any(|n| n == "name"),
        "no name section: a panic in production would name no function"
    );
}
