//! The surfaces beyond the WebSocket widget, through the real stack: the privacy floor,
//! automated clients left uncounted, the badge and shields endpoints, history, and the SSE
//! fallback.

use std::time::{Duration, Instant};

use liveuser_testkit::client::{Client, Received};
use liveuser_testkit::http::HttpResponse;
use liveuser_testkit::sse::EventStream;
use liveuser_testkit::stack::{Stack, StackOptions};
use serde_json::Value;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CRAWLER: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// A socket on `site` with this user agent, joined.
fn reader(stack: &Stack, site: &str, agent: &str) -> Client {
    let url = stack.ws_url(&format!("siteId={site}"));
    let mut client = Client::try_connect_with(&url, &[("User-Agent", agent)], None)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    client.send_text(r#"{"type":"join"}"#);
    client
}

/// Reads `client`'s messages until an update satisfies `want`; the update.
fn update_where(client: &mut Client, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.recv(left) {
            Received::Text(text) => {
                let v: Value = serde_json::from_str(&text).expect("json");
                if v["type"] == "update" && want(&v) {
                    return v;
                }
            }
            other => panic!("no such update: {other:?}"),
        }
    }
}

/// Polls `f` until it is true or 15 s have passed; whether it became true.
fn eventually(f: impl FnMut() -> bool) -> bool {
    liveuser_testkit::wait::eventually(Duration::from_secs(15), f)
}

fn production_like() -> StackOptions {
    StackOptions::default()
        .with_config("count_automated", "off")
        .with_site("quiet", r#"{"minCount": 3}"#)
}

#[test]
fn a_crawler_sees_the_count_but_is_not_in_it() {
    let stack = Stack::start_with(production_like());
    let mut person = reader(&stack, "crawled", BROWSER);
    update_where(&mut person, |u| u["count"] == 1);
    let mut crawler = reader(&stack, "crawled", CRAWLER);
    // It is told the count, which does not include it.
    update_where(&mut crawler, |u| u["count"] == 1);
    let mut second = reader(&stack, "crawled", BROWSER);
    update_where(&mut crawler, |u| u["count"] == 2);
    update_where(&mut second, |u| u["count"] == 2);
    // The API answers what the broadcast stores once it has published (a read between the
    // two is the second-old copy).
    assert!(eventually(|| stack.get_json("/api/online/crawled")
        ["online"]
        == 2));
    // Each answer says when its count was taken, and how old it is.
    let answer = stack.get_json("/api/online/crawled");
    assert_eq!(answer["stale"], false);
    assert!(
        answer["ageMs"].as_u64().is_some_and(|age| age < 60_000),
        "{answer}"
    );
    assert!(
        answer["asOf"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{answer}"
    );
    let badge = stack.http("GET", "/badge/crawled.svg", &[], b"");
    assert!(badge
        .header("x-liveuser-as-of")
        .is_some_and(|t| t.ends_with('Z')));
    assert!(badge.header("x-liveuser-age-ms").is_some());
    assert_eq!(
        stack.app_log_lines("liveuser uncounted site=crawled").len(),
        1
    );
    assert!(stack.app_log_lines("Googlebot").is_empty(), "never logged");
    // Its close changes nothing.
    crawler.close(1000);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stack.get_json("/api/online/crawled")["online"], 2);
}

#[test]
fn below_the_privacy_floor_nobody_is_told_the_exact_count() {
    let stack = Stack::start_with(production_like());
    let mut first = reader(&stack, "quiet", BROWSER);
    let told = update_where(&mut first, |_| true);
    assert_eq!(
        (told["count"].clone(), told["belowMin"].clone()),
        (3.into(), true.into())
    );
    let online = stack.get_json("/api/online/quiet");
    assert_eq!(
        (
            online["online"].clone(),
            online["belowMin"].clone(),
            online["minCount"].clone()
        ),
        (3.into(), true.into(), 3.into())
    );
    let _second = reader(&stack, "quiet", BROWSER);
    let _third = reader(&stack, "quiet", BROWSER);
    // At the floor the count is exact again.
    let told = update_where(&mut first, |u| u.get("belowMin").is_none());
    assert_eq!(told["count"], 3);
    assert!(eventually(|| stack.get_json("/api/online/quiet")
        ["belowMin"]
        == false));
}

/// The session an SSE stream's first event names.
fn session_of(stream: &mut EventStream) -> String {
    let first = stream
        .next_event(Duration::from_secs(15))
        .expect("a session event");
    assert_eq!(first.name, "session");
    let v: Value = serde_json::from_str(&first.data).expect("json");
    v["session"].as_str().expect("session").to_string()
}

/// Posts `{"session": …}` to `path` as the widget's beacon does (a text body: no preflight).
fn send_session(stack: &Stack, path: &str, session: &str) -> HttpResponse {
    let body = serde_json::json!({ "session": session }).to_string();
    stack.http(
        "POST",
        path,
        &[("Content-Type", "text/plain")],
        body.as_bytes(),
    )
}

/// The next `data:` update on `stream` whose count is `count`.
fn stream_count(stream: &mut EventStream, count: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let Some(event) = stream.next_event(deadline - Instant::now()) else {
            break;
        };
        let v: Value = serde_json::from_str(&event.data).expect("json");
        if v["type"] == "update" && v["count"] == count {
            return v;
        }
    }
    panic!("the stream never said {count}");
}

#[test]
fn an_sse_reader_counts_like_a_socket_reader_and_leaves_with_its_beacon() {
    let stack = Stack::start();
    let mut socket = reader(&stack, "streams", BROWSER);
    update_where(&mut socket, |u| u["count"] == 1);
    let mut stream = EventStream::open(
        stack.app_port,
        "/sse?siteId=streams&enableTotalCount=true",
        &[("Origin", "https://elsewhere.example")],
    )
    .expect("a stream");
    assert!(stream
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    assert!(stream
        .head
        .to_ascii_lowercase()
        .contains("access-control-allow-origin: *"));
    let session = session_of(&mut stream);
    // Both readers see 2; the stream's visit counted, as a socket's does.
    let told = stream_count(&mut stream, 2);
    assert_eq!(told["totalCount"], 1);
    update_where(&mut socket, |u| u["count"] == 2);
    assert_eq!(stack.get_json("/api/total/streams")["totalCount"], 1);

    // Heartbeats are retired: the held stream keeps the presence (see the next test).
    let resp = send_session(&stack, "/sse/heartbeat", &session);
    assert_eq!(
        (resp.status, resp.json()["error"].clone()),
        (410, Value::from("gone"))
    );
    // A session that is not one this service gave is 400.
    let forged = stack.http("POST", "/sse/leave", &[], br#"{"session":"x|y"}"#);
    assert_eq!(
        (forged.status, forged.json()["error"].clone()),
        (400, Value::from("invalid_session"))
    );

    // The page goes: its beacon removes the presence at once.
    let resp = send_session(&stack, "/sse/leave", &session);
    assert_eq!(resp.status, 204);
    update_where(&mut socket, |u| u["count"] == 1);
    assert!(eventually(|| stack.get_json("/api/online/streams")
        ["online"]
        == 1));
}

/// Polls the site's count every half second until it is `want` or `within` has passed; how long
/// it took.
fn online_becomes(stack: &Stack, site: &str, want: u64, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if stack.get_json(&format!("/api/online/{site}"))["online"] == want {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

#[test]
fn an_sse_readers_presence_is_kept_by_its_held_stream_and_ends_with_it() {
    // A presence lives 3 s here (2 s heartbeats): only Pushpin's calls while it holds a stream
    // (its next link, every 2 s) can keep a stream's reader counted; the page sends nothing.
    let stack =
        Stack::start_with(StackOptions::default().with_config("heartbeat_interval_secs", "2"));
    let open = || {
        let mut stream =
            EventStream::open(stack.app_port, "/sse?siteId=held", &[]).expect("a stream");
        let session = session_of(&mut stream);
        (stream, session)
    };
    let (_held, _) = open();
    let (closing, _) = open();
    let (mut leaving, leaving_session) = open();
    assert!(online_becomes(&stack, "held", 3, Duration::from_secs(15)).is_some());
    // Twenty seconds (over six presence lifetimes) pass with nothing sent by the readers: all
    // three stay counted.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(20) {
        assert_eq!(stack.get_json("/api/online/held")["online"], 3);
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(!stack.app_log_lines("events=SSE-ALIVE").is_empty());

    // One stream's connection drops (no beacon): Pushpin stops calling, and the reader stops
    // being counted within a presence lifetime and an interval (and a count's settling).
    drop(closing);
    let took = online_becomes(&stack, "held", 2, Duration::from_secs(15)).expect("dropped out");
    println!("a closed stream stopped being counted after {took:?}");

    // Another page leaves with its beacon but keeps its stream open: the presence goes at once,
    // and Pushpin ends the stream.
    let resp = send_session(&stack, "/sse/leave", &leaving_session);
    assert_eq!(resp.status, 204);
    assert!(online_becomes(&stack, "held", 1, Duration::from_secs(10)).is_some());
    assert!(
        leaving.ends_within(Duration::from_secs(15)),
        "the stream ended"
    );
    // Ended by the close the leave published on the stream's own channel (one publish).
    let leaves = stack.app_log_lines("events=SSE-LEAVE");
    assert!(leaves.iter().all(|l| l.contains("publish=1")), "{leaves:?}");
    // The stream still held stays counted.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(stack.get_json("/api/online/held")["online"], 1);
}
