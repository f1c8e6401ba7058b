//! Live presence through the real stack: exact per-site counts, drops, Pushpin crashes,
//! connect bursts, and bad input.

use std::collections::BTreeSet;
use std::time::Duration;

use liveuser_testkit::client::{Client, Received};
use liveuser_testkit::fleet::{connect_many, wait_for_count, Peer, PeerOptions};
use liveuser_testkit::stack::{Stack, StackOptions};

const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Every update a peer has received, as counts.
fn counts_seen(peer: &Peer) -> Vec<u64> {
    peer.seen()
        .messages
        .iter()
        .filter(|m| m["type"] == "update")
        .filter_map(|m| m["count"].as_u64())
        .collect()
}

#[test]
fn two_sites_see_their_own_exact_counts_through_waves_of_connects_and_closes() {
    let stack = Stack::start();
    let options = PeerOptions::default();
    let mut a = connect_many(
        &stack.ws_url("siteId=alpha&clientId=x"),
        "alpha",
        30,
        &options,
    );
    let b = connect_many(&stack.ws_url("siteId=beta"), "beta", 50, &options);
    wait_for_count(&a, 30, SETTLE_LIMIT);
    wait_for_count(&b, 50, SETTLE_LIMIT);

    // A second wave on alpha.
    a.extend(connect_many(
        &stack.ws_url("siteId=alpha"),
        "alpha",
        12,
        &options,
    ));
    wait_for_count(&a, 42, SETTLE_LIMIT);

    // A wave of clean closes on alpha: each gets its close answered.
    let leaving: Vec<Peer> = a.drain(..17).collect();
    for peer in leaving {
        assert_eq!(peer.close(1000).closed, Some(Some(1000)));
    }
    wait_for_count(&a, 25, SETTLE_LIMIT);

    // beta's clients were never told anything about alpha: every count they saw is beta's.
    for peer in &b {
        let seen = counts_seen(peer);
        assert!(seen.iter().all(|c| *c <= 50), "beta peer saw {seen:?}");
        assert_eq!(peer.last_count(), Some(50));
    }
    // alpha's clients never saw beta's either: alpha never had more than 42, beta had 50.
    for peer in &a {
        let seen = counts_seen(peer);
        assert!(seen.iter().all(|c| *c <= 42), "alpha peer saw {seen:?}");
    }
}

#[test]
fn abrupt_drops_leave_the_count_at_once() {
    let stack = Stack::start();
    let mut peers = connect_many(
        &stack.ws_url("siteId=drops"),
        "drops",
        12,
        &PeerOptions::default(),
    );
    wait_for_count(&peers, 12, SETTLE_LIMIT);
    for peer in peers.drain(..5) {
        peer.reset();
    }
    // No heartbeats are configured to expire anything here: only DISCONNECT can do this.
    wait_for_count(&peers, 7, SETTLE_LIMIT);
    assert!(!stack.app_log_lines("events=DISCONNECT").is_empty());
}

#[test]
fn a_killed_pushpin_leaves_no_phantom_users_after_two_heartbeat_intervals() {
    let mut stack =
        Stack::start_with(StackOptions::default().with_config("heartbeat_interval_secs", "2"));
    let beating = PeerOptions {
        heartbeat_every: Some(Duration::from_secs(2)),
        send_join: true,
    };
    let before = connect_many(&stack.ws_url("siteId=crash"), "crash", 8, &beating);
    wait_for_count(&before, 8, SETTLE_LIMIT);

    // Pushpin dies without telling the app: no CLOSE, no DISCONNECT reaches it.
    stack.kill_and_restart_pushpin();
    drop(before);

    let after = connect_many(&stack.ws_url("siteId=crash"), "crash", 3, &beating);
    // They first hear about the phantoms (8 + 3), then the phantoms expire (TTL 4 s) and a
    // heartbeat notices the count changed.
    let took = wait_for_count(&after, 3, SETTLE_LIMIT);
    println!("phantoms gone {took:?} after the new clients connected");
    let seen = counts_seen(&after[0]);
    assert!(seen.contains(&11) || seen.contains(&3), "saw {seen:?}");
}

#[test]
fn readers_reconnecting_after_pushpin_dies_keep_their_presence_and_count_once() {
    let mut stack = Stack::start();
    let before = connect_many(
        &stack.ws_url("siteId=again"),
        "again",
        8,
        &PeerOptions::default(),
    );
    wait_for_count(&before, 8, SETTLE_LIMIT);
    // Each connection was told its presence (the widget names it when it reconnects).
    let tokens: Vec<String> = before
        .iter()
        .map(|p| {
            let seen = p.seen();
            let token = seen.messages.iter().find(|m| m["type"] == "handover");
            token
                .and_then(|m| m["token"].as_str())
                .expect("a presence token")
                .to_string()
        })
        .collect();

    // The place holding the sockets dies without telling the app: the old presences stay until
    // their TTL (45 s). The readers reconnect through the new Pushpin, each naming its own.
    stack.kill_and_restart_pushpin();
    drop(before);
    let after: Vec<Peer> = tokens
        .iter()
        .map(|t| {
            let url = stack.ws_url(&format!("siteId=again&visit=0&handover={t}"));
            // Heartbeats, as the widget sends them (they also claim the site's sweeps); the new
            // Pushpin may refuse a handshake while it starts, and the reader tries again.
            let beating = PeerOptions {
                heartbeat_every: Some(Duration::from_secs(1)),
                send_join: true,
            };
            Peer::connect_retrying(&url, "again", beating)
        })
        .collect();
    // The service counts 8 (16 without the takeover, until the old presences expire at 45 s),
    // and no page is ever told more: a reader is its presence, not its connection.
    let started = std::time::Instant::now();
    let mut online = stack.get_json("/api/online/again");
    while online["online"] != 8 && started.elapsed() < SETTLE_LIMIT {
        std::thread::sleep(Duration::from_millis(200));
        online = stack.get_json("/api/online/again");
    }
    assert_eq!(online["online"], 8, "{online}");
    let told: Vec<Vec<u64>> = after.iter().map(counts_seen).collect();
    assert!(told.iter().flatten().all(|&c| c <= 8), "told {told:?}");
    assert!(told.iter().any(|t| t.last() == Some(&8)), "told {told:?}");
}

#[test]
fn a_burst_of_200_connects_costs_one_broadcast_per_slot_and_ends_exact() {
    let stack = Stack::start();
    let peers = connect_many(
        &stack.ws_url("siteId=burst"),
        "burst",
        200,
        &PeerOptions::default(),
    );
    wait_for_count(&peers, 200, Duration::from_secs(60));

    let slots = stack.published_slots("burst");
    let distinct: BTreeSet<u64> = slots.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        slots.len(),
        "two broadcasts shared a slot: {slots:?}"
    );
    let first = *distinct.first().expect("at least one broadcast");
    let last = *distinct.last().expect("at least one broadcast");
    // At most one broadcast per 500 ms slot over the span the burst took: never 200.
    assert!(slots.len() as u64 <= (last - first) / 500 + 1);
    let opens = stack.app_log_lines("events=OPEN").len();
    assert_eq!(opens, 200);
    println!(
        "200 connects: {} broadcasts over {} ms (the original would send 200 to up to 200 pages each)",
        slots.len(),
        last - first
    );
    // Each OPEN wrote a key for each window its presence reaches (two or three), deleted
    // nothing and listed nothing.
    let number = |l: &String, name: &str| liveuser_testkit::log::number(l, name);
    let open_lines: Vec<String> = stack
        .app_log_lines("liveuser request method=POST path=/ws status=200")
        .into_iter()
        .filter(|l| l.contains("events=OPEN"))
        .collect();
    assert_eq!(open_lines.len(), 200);
    assert!(
        open_lines
            .iter()
            .all(|l| (2..=3).contains(&number(l, "kv_insert"))
                && number(l, "kv_delete") == 0
                && number(l, "kv_list") == 0
                && number(l, "kv_lookup") == 0),
        "{open_lines:?}"
    );
    // Each join's reply carried its first count, from the site's snapshot: looked up (two
    // keys) at most once a second per POP, else from the cache; never a listing.
    let join_lines: Vec<String> = stack
        .app_log_lines("path=/ws status=200 ")
        .into_iter()
        .filter(|l| l.ends_with("events=TEXT"))
        .collect();
    let number = |l: &str, name: &str| liveuser_testkit::log::number(l, name);
    assert!(join_lines.iter().all(|l| number(l, "kv_list") == 0));
    let lookups: u64 = join_lines.iter().map(|l| number(l, "kv_lookup")).sum();
    assert!(
        lookups <= 2 * ((last - first) / 1000 + 2),
        "{lookups} snapshot lookups"
    );
}

#[test]
fn heartbeats_are_answered_and_cost_at_most_one_kv_write_a_window() {
    let stack =
        Stack::start_with(StackOptions::default().with_config("heartbeat_interval_secs", "2"));
    let mut client = Client::connect(&stack.ws_url("siteId=beats&enableTotalCount=false"));
    client.send_text(r#"{"type":"join","siteId":"beats","clientId":"c1"}"#);
    for _ in 0..3 {
        client.send_text(r#"{"type":"heartbeat","siteId":"beats","clientId":"c1","timestamp":1}"#);
    }
    let mut heartbeats = 0;
    let mut updates = Vec::new();
    while heartbeats < 3 {
        match client.recv(Duration::from_secs(10)) {
            Received::Text(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).expect("json");
                match v["type"].as_str() {
                    Some("heartbeat") => {
                        assert!(v["timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000));
                        heartbeats += 1;
                    }
                    Some("update") => updates.push(v["count"].as_u64()),
                    // The connection's presence, for a reconnect to name.
                    Some("handover") => assert!(v["token"].as_str().is_some_and(|t| t.len() == 32)),
                    _ => panic!("unexpected {text}"),
                }
            }
            other => panic!("expected heartbeat replies, got {other:?}"),
        }
    }
    // Three heartbeats in a row: at most one wrote (a key for the window its presence now
    // reaches), each request logged its cost. The OPEN wrote a key for each window its
    // presence reaches (two or three).
    let lines = stack.app_log_lines("liveuser request method=POST path=/ws");
    let inserts = |l: &String| liveuser_testkit::log::number(l, "kv_insert");
    let (opens, beats): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| l.contains("events=OPEN"));
    assert!(!beats.is_empty());
    assert!(
        beats.iter().filter(|l| inserts(l) == 0).count() >= 2,
        "{beats:?}"
    );
    assert!(beats.iter().all(|l| inserts(l) <= 1), "{beats:?}");
    assert!(
        opens.iter().all(|l| (2..=3).contains(&inserts(l))),
        "{opens:?}"
    );
}

#[test]
fn forged_signatures_are_refused_and_change_nothing() {
    let stack = Stack::start();
    let peers = connect_many(
        &stack.ws_url("siteId=guarded"),
        "guarded",
        3,
        &PeerOptions::default(),
    );
    wait_for_count(&peers, 3, SETTLE_LIMIT);

    let body = b"OPEN\r\n";
    let forged_key =
        liveuser_testkit::jwt::hs256_token(b"not-the-key", &stack.grip_issuer, 4_000_000_000);
    for sig in [None, Some("garbage"), Some(forged_key.as_str())] {
        let mut headers = vec![
            ("Content-Type", "application/websocket-events"),
            ("Connection-Id", "forged-1"),
        ];
        if let Some(sig) = sig {
            headers.push(("Grip-Sig", sig));
        }
        let resp = stack.http("POST", "/ws?siteId=guarded", &headers, body);
        assert_eq!(resp.status, 403, "{}", resp.text());
        assert_eq!(resp.json()["error"], "forbidden");
    }
    // Meta headers cannot be forged either: the signature is checked first.
    let resp = stack.http(
        "POST",
        "/ws",
        &[
            ("Content-Type", "application/websocket-events"),
            ("Connection-Id", "forged-2"),
            ("Meta-Site", "guarded"),
        ],
        b"DISCONNECT\r\n",
    );
    assert_eq!(resp.status, 403);
    // A correctly signed request (as Pushpin would send) is accepted: the check is real.
    let resp = stack.signed_events("siteId=other-site", "signed-1", &[], b"PING 1\r\nx\r\n");
    assert_eq!(
        resp.status,
        400,
        "a signed request without OPEN has no site: {}",
        resp.text()
    );

    let forbidden = stack.app_log_lines("liveuser request method=POST path=/ws status=403");
    assert_eq!(forbidden.len(), 4);
    assert!(forbidden
        .iter()
        .all(|l| l.contains("kv_insert=0") && l.contains("kv_delete=0")));
    // The real clients still count 3 and were told nothing new.
    std::thread::sleep(Duration::from_millis(1500));
    for peer in &peers {
        assert_eq!(peer.last_count(), Some(3));
    }
}

#[test]
fn bad_site_ids_are_refused_before_anything_is_touched() {
    let stack = Stack::start();
    for query in [
        "siteId=has%20space",
        "siteId=",
        "siteId=a%2Fb",
        &format!("siteId={}", "x".repeat(65)),
    ] {
        match Client::try_connect(&stack.ws_url(query)) {
            Ok(_) => panic!("{query} was accepted"),
            Err(e) => assert!(e.contains("400"), "{query}: {e}"),
        }
    }
    let refused = stack.app_log_lines("error=invalid_site_id");
    assert_eq!(refused.len(), 4, "{}", stack.app_log());
    assert!(stack
        .app_log_lines("liveuser request method=GET path=/ws status=400")
        .iter()
        .all(|l| l.contains("kv_insert=0") && l.contains("publish=0")));
}

#[test]
fn oversize_and_malformed_messages_close_only_their_own_connection() {
    let stack = Stack::start();
    let peers = connect_many(
        &stack.ws_url("siteId=strict"),
        "strict",
        4,
        &PeerOptions::default(),
    );
    wait_for_count(&peers, 4, SETTLE_LIMIT);

    let mut big = Client::connect(&stack.ws_url("siteId=strict"));
    let mut malformed = Client::connect(&stack.ws_url("siteId=strict"));
    let mut binary = Client::connect(&stack.ws_url("siteId=strict"));
    let mut polite = Client::connect(&stack.ws_url("siteId=strict"));
    wait_for_count(&peers, 8, SETTLE_LIMIT);

    big.send_text(&format!(
        r#"{{"type":"heartbeat","pad":"{}"}}"#,
        "x".repeat(5000)
    ));
    malformed.send_text("{not json");
    binary.send_binary(&[1, 2, 3]);
    polite.send_text(r#"{"type":"something-new","x":1}"#);
    assert_eq!(close_code(&mut big), Some(1009));
    assert_eq!(close_code(&mut malformed), Some(1007));
    assert_eq!(close_code(&mut binary), Some(1003));
    // Unknown types are ignored: still open, still counted.
    polite.send_text(r#"{"type":"heartbeat","siteId":"strict","clientId":"p"}"#);
    loop {
        match polite.recv(Duration::from_secs(10)) {
            Received::Text(t) if t.contains("\"heartbeat\"") => break,
            Received::Text(_) => continue,
            other => panic!("polite client lost: {other:?}"),
        }
    }
    wait_for_count(&peers, 5, SETTLE_LIMIT);
    assert_eq!(stack.app_log_lines("liveuser ws-close").len(), 3);
}

fn close_code(client: &mut Client) -> Option<u16> {
    loop {
        match client.recv(Duration::from_secs(10)) {
            Received::Text(_) => continue,
            Received::Closed(code) => return code,
            Received::TimedOut => panic!("no close"),
        }
    }
}

#[test]
fn a_count_too_large_for_one_execution_is_split_over_calls_to_the_service_itself() {
    // Leaves of at most 4 readers: 20 readers are counted by 8 census requests through the
    // `self` backend, each answered by an execution of its own (Viceroy runs them as Compute
    // would, side by side).
    let stack = Stack::start_with(StackOptions::default().with_config("census_leaf_keys", "4"));
    let options = PeerOptions::default();
    let mut peers = connect_many(&stack.ws_url("siteId=huge"), "huge", 20, &options);
    wait_for_count(&peers, 20, SETTLE_LIMIT);
    peers.extend(connect_many(
        &stack.ws_url("siteId=huge"),
        "huge",
        12,
        &options,
    ));
    wait_for_count(&peers, 32, SETTLE_LIMIT);
    peers.truncate(25);
    wait_for_count(&peers, 25, SETTLE_LIMIT);
    let shares = stack.app_log_lines("path=/_liveuser/census");
    assert!(shares.len() >= 8, "{shares:?}");
    assert!(
        shares.iter().all(|l| l.contains("status=200")),
        "{shares:?}"
    );
    // Each share listed its own part of the readers, one page each.
    assert!(shares
        .iter()
        .all(|l| liveuser_testkit::log::number(l, "kv_list") == 1));

    // Nobody else can make the service count: an unsigned or forged request lists nothing.
    for query in [
        "",
        "?site=huge&window=1&shard=0&leaf=1&exp=99999999999999&sig=00000000000000000000000000000000",
    ] {
        let path = format!("/_liveuser/census{query}");
        let resp = liveuser_testkit::http::http_request(stack.app_port, "GET", &path, &[], b"");
        assert!([400, 403].contains(&resp.status), "{path}: {}", resp.status);
    }
    let refused = stack.app_log_lines("path=/_liveuser/census status=4");
    assert!(refused
        .iter()
        .all(|l| liveuser_testkit::log::number(l, "kv_list") == 0));
}
