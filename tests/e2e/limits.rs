//! Per-client limits and Fanout's keep-alive through the real stack. Each address gets its
//! share of sockets, visits and API reads, and other addresses are unaffected: the limits are
//! counted in the POP's cache, which Viceroy runs (its Edge Rate Limiting calls are no-ops).
//! Clients on 127.0.0.2 stand in for another network.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use liveuser_testkit::client::Client;
use liveuser_testkit::http::try_http_request_as;
use liveuser_testkit::stack::{Stack, StackOptions};
use liveuser_testkit::wait::eventually;

const ANOTHER_CLIENT: Option<Ipv4Addr> = Some(Ipv4Addr::new(127, 0, 0, 2));

fn online(stack: &Stack, site: &str) -> u64 {
    stack.get_json(&format!("/api/online/{site}"))["online"]
        .as_u64()
        .expect("a count")
}

#[test]
fn a_client_over_its_share_of_sockets_is_refused_with_429_and_gets_one_back_on_close() {
    let stack =
        Stack::start_with(StackOptions::default().with_config("max_sockets_per_client", "3"));
    let url = stack.ws_url("siteId=capped");
    let mut held: Vec<Client> = (0..3)
        .map(|n| Client::try_connect_as(&url, None, None).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect();
    let refused = Client::try_connect_as(&url, None, None)
        .err()
        .expect("a fourth socket is refused");
    assert!(refused.contains("429"), "{refused}");
    assert_eq!(
        stack
            .app_log_lines("liveuser socket-limited site=capped")
            .len(),
        1
    );

    // Another network, and another site, are unaffected.
    let _other = Client::try_connect_as(&url, None, ANOTHER_CLIENT).expect("another client");
    let _elsewhere = Client::try_connect_as(&stack.ws_url("siteId=elsewhere"), None, None)
        .expect("another site");
    assert!(eventually(Duration::from_secs(10), || online(
        &stack, "capped"
    ) == 4));

    // A socket that closes gives its ticket back: its close reaches the service through
    // Fanout with the ticket in the connection's meta.
    held.pop().expect("a socket").close(1000);
    assert!(
        eventually(Duration::from_secs(10), || {
            match Client::try_connect_as(&url, None, None) {
                Ok(client) => {
                    held.push(client);
                    true
                }
                Err(_) => false,
            }
        }),
        "the freed ticket is taken again"
    );
    assert!(eventually(Duration::from_secs(10), || online(
        &stack, "capped"
    ) == 4));
    assert!(
        stack.app_log().lines().all(|l| !l.contains("127.0.0")),
        "addresses are not logged"
    );
}

#[test]
fn a_client_counts_its_share_of_visits_an_hour() {
    let stack =
        Stack::start_with(StackOptions::default().with_config("max_visits_per_client_hour", "2"));
    let url = stack.ws_url("siteId=tally&enableTotalCount=true");
    let _mine: Vec<Client> = (0..4)
        .map(|_| Client::try_connect_as(&url, None, None).expect("connect"))
        .collect();
    let _theirs = Client::try_connect_as(&url, None, ANOTHER_CLIENT).expect("connect");
    let total = || stack.get_json("/api/total/tally")["totalCount"].as_u64();
    assert!(eventually(Duration::from_secs(10), || online(
        &stack, "tally"
    ) == 5));
    assert!(eventually(Duration::from_secs(10), || total() == Some(3)));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        total(),
        Some(3),
        "two of mine and one of theirs, and no more"
    );
    assert_eq!(stack.app_log_lines("liveuser visit-limited").len(), 2);
}

#[test]
fn a_client_over_its_share_of_api_reads_gets_429_with_retry_after() {
    let stack = Stack::start_with(
        StackOptions::default().with_config("max_api_reads_per_client_minute", "5"),
    );
    // Six reads within one minute window: start early in one.
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        % 60;
    if second > 45 {
        std::thread::sleep(Duration::from_secs(61 - second));
    }
    // Each read names a site nobody has used, so each reaches the store (a POP answers a site
    // it found empty from its cache for a while, uncharged).
    let reads = std::cell::Cell::new(0);
    let read = |from: Option<Ipv4Addr>| {
        reads.set(reads.get() + 1);
        let path = format!("/api/online/reads{}", reads.get());
        try_http_request_as(from, stack.app_port, "GET", &path, &[], b"").expect("a response")
    };
    for n in 0..5 {
        assert_eq!(read(None).status, 200, "read {n}");
    }
    let refused = read(None);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["error"], "too_many_requests");
    let retry_after: u32 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        read(ANOTHER_CLIENT).status,
        200,
        "another client is unaffected"
    );
    assert_eq!(stack.app_log_lines("liveuser api-limited").len(), 1);
}

/// A page that never sends a heartbeat (a background tab the browser has frozen) stays
/// counted while its socket is open: Fanout calls the service every `Keep-Alive-Interval`,
/// which refreshes its presence. A connection no one holds open expires with its TTL.
#[test]
fn fanout_keep_alives_keep_a_silent_socket_counted_past_its_ttl() {
    // Heartbeats every 15 s: TTL 23 s, keep-alive every 20 s, sweeps every 5 s.
    let stack =
        Stack::start_with(StackOptions::default().with_config("heartbeat_interval_secs", "15"));
    let _silent =
        Client::try_connect_as(&stack.ws_url("siteId=quiet"), None, None).expect("connect");
    // A connection opened straight at the service, which nothing will keep alive.
    let opened = stack.signed_events("siteId=quiet", "unheld", &[], b"OPEN\r\n");
    assert_eq!(opened.status, 200);
    assert!(eventually(Duration::from_secs(10), || online(
        &stack, "quiet"
    ) == 2));
    std::thread::sleep(Duration::from_secs(50));
    assert_eq!(
        online(&stack, "quiet"),
        1,
        "the held socket is still counted, the unheld one expired"
    );
    let keep_alives = stack
        .app_log_lines("liveuser request method=POST path=/ws status=200")
        .into_iter()
        .filter(|l| l.contains(" site=quiet ") && l.ends_with(" events="))
        .count();
    assert!(keep_alives >= 2, "Fanout's keep-alive calls: {keep_alives}");
}
