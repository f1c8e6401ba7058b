//! Total visits and the stats API through the real stack.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use liveuser_testkit::fleet::{connect_many, wait_for_count, wait_for_total, PeerOptions};
use liveuser_testkit::stack::{Stack, StackOptions};
use liveuser_testkit::wait::eventually;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn two_hundred_concurrent_first_visits_add_exactly_two_hundred() {
    let stack = Stack::start();
    let url = stack.ws_url("siteId=visits&enableTotalCount=true");
    let peers = connect_many(&url, "visits", 200, &PeerOptions::default());
    wait_for_count(&peers, 200, Duration::from_secs(60));
    wait_for_total(&peers, 200, LIMIT);

    let total = stack.get_json("/api/total/visits");
    assert_eq!(total["totalCount"], 200);
    assert_eq!(total["siteId"], "visits");
    assert!(total["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    let online = stack.get_json("/api/online/visits");
    assert_eq!(
        online["online"], 200,
        "the API agrees with what the sockets are told"
    );
    let contended = stack.app_log_lines("liveuser visit-retried").len();
    let failed = stack.app_log_lines("liveuser visit-failed").len();
    println!("200 concurrent visits: {contended} needed retries, {failed} gave up");
    assert_eq!(failed, 0);
}

#[test]
fn two_hundred_opens_at_the_same_instant_lose_no_increment() {
    let stack = Arc::new(Stack::start());
    let start = Arc::new(Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (stack, start) = (Arc::clone(&stack), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                stack.signed_events(
                    "siteId=instant&enableTotalCount=true",
                    &format!("c{i}"),
                    &[],
                    b"OPEN\r\n",
                )
            })
        })
        .collect();
    for t in threads {
        let resp = t.join().expect("thread");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    // The API serves a total cached for up to a second per POP (a broadcast may have cached
    // one read while the last retries were still landing): once that has passed, it is exact.
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(stack.get_json("/api/total/instant")["totalCount"], 200);
    let retried = stack.app_log_lines("liveuser visit-retried").len();
    println!("200 simultaneous OPENs: {retried} increments needed more than one attempt");
    assert!(stack.app_log_lines("liveuser visit-failed").is_empty());
}

#[test]
fn reconnects_and_count_only_pages_add_no_visits() {
    let stack = Stack::start();
    let first = connect_many(
        &stack.ws_url("siteId=recon&enableTotalCount=true"),
        "recon",
        3,
        &PeerOptions::default(),
    );
    wait_for_total(&first, 3, LIMIT);
    // The same page views reconnecting (visit=0), and pages that do not show totals.
    let again = connect_many(
        &stack.ws_url("siteId=recon&enableTotalCount=true&visit=0"),
        "recon",
        3,
        &PeerOptions::default(),
    );
    let plain = connect_many(
        &stack.ws_url("siteId=recon"),
        "recon",
        2,
        &PeerOptions::default(),
    );
    wait_for_count(&plain, 8, LIMIT);
    wait_for_total(&again, 3, LIMIT);
    // The API answers what the broadcast stores once it has published.
    assert!(eventually(LIMIT, || stack.get_json("/api/total/recon")
        ["totalCount"]
        == 3));
    // Count-only pages are never sent totals.
    for peer in &plain {
        assert!(peer
            .seen()
            .messages
            .iter()
            .all(|m| m.get("totalCount").is_none()));
    }
}

#[test]
fn reset_and_seed_need_the_admin_token() {
    let stack = Stack::start();
    let peers = connect_many(
        &stack.ws_url("siteId=admin&enableTotalCount=1"),
        "admin",
        2,
        &PeerOptions::default(),
    );
    wait_for_total(&peers, 2, LIMIT);

    let bearer = format!("Bearer {}", stack.admin_token);
    for auth in [None, Some("Bearer wrong"), Some(stack.admin_token.as_str())] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let resp = stack.http("POST", "/api/reset/admin", &headers, b"");
        assert_eq!(resp.status, 401, "{auth:?}: {}", resp.text());
        assert_eq!(resp.json()["error"], "unauthorized");
    }
    assert_eq!(stack.get_json("/api/total/admin")["totalCount"], 2);

    let resp = stack.http(
        "POST",
        "/api/reset/admin",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["message"], "Total count reset successfully");
    assert_eq!(stack.get_json("/api/total/admin")["totalCount"], 0);

    let seed = br#"{"totalCount":41000}"#;
    let resp = stack.http(
        "PUT",
        "/api/total/admin",
        &[("Authorization", "Bearer wrong")],
        seed,
    );
    assert_eq!(resp.status, 401);
    let resp = stack.http(
        "PUT",
        "/api/total/admin",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        seed,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // A new visit counts on top of the seeded total, and the sockets are told.
    let newcomer = connect_many(
        &stack.ws_url("siteId=admin&enableTotalCount=true"),
        "admin",
        1,
        &PeerOptions::default(),
    );
    wait_for_total(&newcomer, 41001, LIMIT);
    wait_for_total(&peers, 41001, LIMIT);
    assert_eq!(stack.get_json("/api/total/admin")["totalCount"], 41001);
}

#[test]
fn without_an_admin_token_the_admin_endpoints_are_off() {
    let stack = Stack::start_with(StackOptions::default().without_admin_token());
    let resp = stack.http(
        "POST",
        "/api/reset/off",
        &[("Authorization", "Bearer anything")],
        b"",
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json()["error"], "forbidden");
}

#[test]
fn the_api_refuses_bad_input_clearly_and_sends_cors() {
    let stack = Stack::start();
    let resp = stack.http("GET", "/api/total/bad%20site", &[], b"");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"], "invalid_site_id");
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));

    let resp = stack.http("DELETE", "/api/total/fine", &[], b"");
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, PUT, OPTIONS"));

    let resp = stack.http(
        "GET",
        "/api/online/fine",
        &[("Origin", "https://example.com")],
        b"",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert_eq!(resp.json()["online"], 0);

    let resp = stack.http("OPTIONS", "/api/total/fine", &[], b"");
    assert_eq!(resp.status, 204);

    let resp = stack.http(
        "GET",
        "/ws?siteId=ok&enableTotalCount=maybe",
        &[("Upgrade", "websocket")],
        b"",
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("enableTotalCount"));
}
