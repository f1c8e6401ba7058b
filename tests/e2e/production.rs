//! The production paths, exercised locally: publishing to Fastly's API shape (against a
//! stand-in that records what it gets and passes it on to Pushpin), publish failures, and
//! per-site origin allow-lists.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liveuser_testkit::client::{Client, Received};
use liveuser_testkit::fleet::{connect_many, wait_for_count, PeerOptions};
use liveuser_testkit::http::http_request;
use liveuser_testkit::stack::{Stack, StackOptions};
use liveuser_testkit::wait::eventually;

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Stands in for `api.fastly.com`: records every request and, while up, passes publishes
/// on to Pushpin's publish endpoint (as Fanout would deliver them). While down it drops every
/// connection unanswered, like an unreachable API.
struct FakeFastlyApi {
    port: u16,
    up: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    pushpin_publish_port: Arc<Mutex<u16>>,
}

impl FakeFastlyApi {
    fn start() -> FakeFastlyApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let api = FakeFastlyApi {
            port: listener.local_addr().expect("addr").port(),
            up: Arc::new(AtomicBool::new(true)),
            seen: Arc::new(Mutex::new(Vec::new())),
            pushpin_publish_port: Arc::new(Mutex::new(0)),
        };
        let (up, seen, forward) = (
            Arc::clone(&api.up),
            Arc::clone(&api.seen),
            Arc::clone(&api.pushpin_publish_port),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if !up.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let port = forward.lock().map(|p| *p).unwrap_or(0);
                if let Some(recorded) = answer(stream, port) {
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(recorded);
                    }
                }
            }
        });
        api
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn forward_to(&self, port: u16) {
        if let Ok(mut p) = self.pushpin_publish_port.lock() {
            *p = port;
        }
    }

    fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn answer(stream: TcpStream, forward_port: u16) -> Option<Recorded> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let status = if forward_port == 0 {
        200
    } else {
        let json = [("Content-Type", "application/json")];
        http_request(forward_port, "POST", "/publish/", &json, &body).status
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    Some(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn production_publishing(api: &FakeFastlyApi) -> StackOptions {
    StackOptions::default()
        .with_config("publish_target", "fastly")
        .with_config("heartbeat_interval_secs", "2")
        .with_secret("fanout_publish_token", "test-publish-token")
        .with_fastly_api(&api.url())
}

#[test]
fn publishing_sends_the_production_request_to_the_fastly_api() {
    let api = FakeFastlyApi::start();
    let stack = Stack::start_with(production_publishing(&api));
    api.forward_to(stack.publish_port);
    let peers = connect_many(
        &stack.ws_url("siteId=prod"),
        "prod",
        3,
        &PeerOptions::default(),
    );
    wait_for_count(&peers, 3, Duration::from_secs(30));

    let seen = api.seen();
    // The count's publish (the total's follows it, once its visits are read).
    let publish = seen
        .iter()
        .rev()
        .find(|p| p.body.contains("\"channel\":\"site:prod\""))
        .expect("the API got a count's publish");
    assert_eq!(publish.method, "POST");
    // Viceroy's service id locally; on Fastly, the real one.
    assert_eq!(publish.path, "/service/0000000000000000000000/publish/");
    assert_eq!(publish.header("fastly-key"), Some("test-publish-token"));
    assert_eq!(publish.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&publish.body).expect("JSON body");
    assert_eq!(body["items"][0]["channel"], "site:prod");
    let content: serde_json::Value = serde_json::from_str(
        body["items"][0]["formats"]["ws-message"]["content"]
            .as_str()
            .expect("content"),
    )
    .expect("update JSON");
    assert_eq!(content["type"], "update");
    assert_eq!(content["count"], 3);
    // The slot the count was taken for: a page keeps the newest it has shown.
    assert!(
        content["slot"].as_u64().is_some_and(|s| s % 500 == 0),
        "{content}"
    );
    // The total's publish follows, to the same API (once the broadcast has read the visits:
    // it may land after the pages already show the count).
    assert!(eventually(Duration::from_secs(10), || api
        .seen()
        .iter()
        .any(|p| p.body.contains("\"channel\":\"site-totals:prod\""))));
}

#[test]
fn a_dead_publish_target_fails_no_socket_and_counts_recover_when_it_returns() {
    let api = FakeFastlyApi::start();
    let stack = Stack::start_with(production_publishing(&api));
    api.forward_to(stack.publish_port);
    let beating = PeerOptions {
        heartbeat_every: Some(Duration::from_secs(2)),
        send_join: true,
    };
    let mut peers = connect_many(&stack.ws_url("siteId=outage"), "outage", 3, &beating);
    wait_for_count(&peers, 3, Duration::from_secs(30));

    // The API goes away; pages keep arriving, and their sockets open and stay up.
    api.up.store(false, Ordering::SeqCst);
    peers.extend(connect_many(
        &stack.ws_url("siteId=outage"),
        "outage",
        2,
        &beating,
    ));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !stack.app_log_lines("result=publish-failed").is_empty(),
        "failures are logged: {}",
        stack.app_log()
    );
    for peer in &peers {
        assert_eq!(
            peer.seen().closed,
            None,
            "a socket was closed by the outage"
        );
    }
    // The heartbeat replies still flow while publishing fails.
    assert!(peers[3]
        .seen()
        .messages
        .iter()
        .any(|m| m["type"] == "heartbeat"));

    // Back up: the next heartbeat notices the count nobody was told about and broadcasts it.
    api.up.store(true, Ordering::SeqCst);
    wait_for_count(&peers, 5, Duration::from_secs(30));
}

#[test]
fn an_origin_allow_list_refuses_other_pages_with_403() {
    let stack = Stack::start_with(StackOptions::default().with_site(
        "members",
        r#"{"origins": ["http://allowed.example", "https://www.allowed.example"]}"#,
    ));
    let url = stack.ws_url("siteId=members");
    let mut ok =
        Client::try_connect_from(&url, Some("http://allowed.example")).expect("allowed origin");
    ok.send_text(r#"{"type":"heartbeat"}"#);
    assert!(matches!(
        ok.recv(Duration::from_secs(10)),
        Received::Text(_)
    ));
    for origin in [Some("http://evil.example"), None] {
        match Client::try_connect_from(&url, origin) {
            Ok(_) => panic!("{origin:?} was let in"),
            Err(e) => assert!(e.contains("403"), "{origin:?}: {e}"),
        }
    }
    // A site without a list takes every page, as the original does.
    assert!(
        Client::try_connect_from(&stack.ws_url("siteId=open"), Some("http://anyone.example"))
            .is_ok()
    );
    // The authoritative check is at OPEN too: a signed OPEN from a foreign origin gets 403.
    let foreign = [("Origin", "http://evil.example")];
    let resp = stack.signed_events("siteId=members", "x1", &foreign, b"OPEN\r\n");
    assert_eq!(resp.status, 403, "{}", resp.text());
}

#[test]
fn log_lines_go_to_the_log_endpoint_as_well_as_stdout_when_it_is_on() {
    let stack = Stack::start_with(StackOptions::default().with_config("log_endpoint", "on"));
    assert_eq!(stack.http("GET", "/healthz", &[], b"").status, 204);
    // Viceroy shows what the service writes to an endpoint under the endpoint's name (the
    // request's line is written once its response has gone: wait for it).
    let logged = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("liveuser request method=GET path=/healthz status=204"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut endpoint_lines = stack.app_log_lines("liveuser_log");
    while !logged(&endpoint_lines) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        endpoint_lines = stack.app_log_lines("liveuser_log");
    }
    assert!(logged(&endpoint_lines), "{endpoint_lines:?}");
    // Locally (the project's fastly.toml) it is off: stdout alone, no line twice.
    let local = Stack::start();
    assert_eq!(local.http("GET", "/healthz", &[], b"").status, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while local.app_log_lines("path=/healthz status=204").is_empty()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(local.app_log_lines("liveuser_log").is_empty());
    assert_eq!(local.app_log_lines("path=/healthz status=204").len(), 1);
}
