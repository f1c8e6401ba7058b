//! The stats API's tests, over the fake host services.

use super::*;
use crate::count::snapshot::{self, Snapshot};
use crate::count::{peak, presence, totals};
use crate::platform::ids::IdSource;
use crate::platform::testing::TestServices;
use crate::wire::request::ClientAddress;

fn request(method: &str, path: &str, auth: Option<&str>, body: &str) -> Request<Vec<u8>> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        builder = builder.header("Authorization", auth);
    }
    builder.body(body.as_bytes().to_vec()).expect("request")
}

fn call(
    t: &TestServices,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> Result<Response<Vec<u8>>, HttpError> {
    handle(&request(method, path, auth, body), &t.services()).map(|h| h.response)
}

fn total_of(t: &TestServices, site: &str) -> u64 {
    let site = SiteId::parse(site).expect("site");
    totals::settle(&t.kv, &site, t.clock.now.get(), false)
        .expect("settle")
        .total
}

fn body(resp: &Response<Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(resp.body()).expect("json")
}

fn visits(t: &TestServices, site: &str, n: u32) {
    let site = SiteId::parse(site).expect("site");
    for _ in 0..n {
        totals::record_visit(&t.kv, &t.ids, &t.clock, &site).expect("visit");
    }
}

#[test]
fn total_and_online_answer_with_cors_and_iso_timestamps() {
    let t = TestServices::new();
    t.set_time(1_795_862_040_123);
    visits(&t, "shop", 3);
    let resp = call(&t, "GET", "/api/total/shop", None, "").expect("total");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        body(&resp),
        json!({"siteId": "shop", "totalCount": 3, "timestamp": "2026-11-28T10:34:00.123Z"})
    );
    let resp = call(&t, "GET", "/api/online/shop", None, "").expect("online");
    assert_eq!(body(&resp)["online"], 0);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

#[test]
fn online_answers_for_a_page_too() {
    let t = TestServices::new();
    t.set_time(1_795_862_040_123);
    let shop = SiteId::parse("shop").expect("site");
    let docs = page::id(&t.secrets, &shop, "/docs").expect("id");
    let now = t.clock.now.get();
    for n in 1..=2 {
        let id = presence::new_id_from([0, n]);
        presence::join_on(&t.kv, &t.config, &shop, id, Some(docs.clone()), now).expect("join");
    }
    presence::join(&t.kv, &t.config, &shop, presence::new_id_from([0, 3]), now).expect("join");
    // No snapshot yet: counted from the store.
    let resp = call(&t, "GET", "/api/online/shop?page=/docs", None, "").expect("online");
    assert_eq!(
        (
            body(&resp)["online"].clone(),
            body(&resp)["pageOnline"].clone()
        ),
        (json!(3), json!(2))
    );
    let resp = call(&t, "GET", "/api/online/shop?page=/blog", None, "").expect("online");
    assert_eq!(body(&resp)["pageOnline"], 0);
    // From the snapshot once there is one; null beyond the busiest pages.
    let full = Snapshot {
        slot_end_ms: now,
        count: 70,
        total: None,
        pages: (0..page::MAX_PAGES as u64)
            .map(|n| (format!("{n:016x}"), 1))
            .collect(),
        peak: None,
        countries: Vec::new(),
    };
    snapshot::write(&t.kv, &t.config, &shop, &full).expect("snapshot");
    t.set_time(now + 2_000);
    let resp = call(&t, "GET", "/api/online/shop?page=/docs", None, "").expect("online");
    assert_eq!(body(&resp)["online"], 70);
    assert_eq!(body(&resp)["pageOnline"], serde_json::Value::Null);
    assert!(body(&resp).get("pageOnline").is_some());
    let err = call(&t, "GET", "/api/online/shop?page=a%20b", None, "").expect_err("bad page");
    assert_eq!(err.status(), 400);
}

#[test]
fn below_the_privacy_floor_online_says_fewer_than_the_floor() {
    let t = TestServices::new();
    crate::count::registry::register(&t, "shop", r#"{"minCount": 5}"#);
    let shop = SiteId::parse("shop").expect("site");
    let now = t.clock.now.get();
    for n in 1..=3 {
        presence::join(&t.kv, &t.config, &shop, presence::new_id_from([0, n]), now).expect("join");
    }
    let resp = call(&t, "GET", "/api/online/shop?page=/x", None, "").expect("online");
    let b = body(&resp);
    assert_eq!(
        (
            &b["online"],
            &b["belowMin"],
            &b["minCount"],
            &b["pageOnline"],
            &b["pageBelowMin"]
        ),
        (&json!(5), &json!(true), &json!(5), &json!(5), &json!(true))
    );
    // Another site has no floor, and no floor fields.
    let resp = call(&t, "GET", "/api/online/other", None, "").expect("online");
    assert!(body(&resp).get("belowMin").is_none());
}

#[test]
fn the_badge_and_shields_show_the_live_count() {
    let t = TestServices::new();
    let shop = SiteId::parse("shop").expect("site");
    let now = t.clock.now.get();
    for n in 1..=2 {
        presence::join(&t.kv, &t.config, &shop, presence::new_id_from([0, n]), now).expect("join");
    }
    let resp = call(&t, "GET", "/badge/shop.svg?label=readers", None, "").expect("badge");
    assert_eq!(
        resp.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
    assert_eq!(resp.headers()["cache-control"], "public, max-age=10");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let svg = String::from_utf8(resp.body().clone()).expect("utf-8");
    assert!(svg.contains(">readers</text>") && svg.contains(">2</text>"));
    let resp = call(&t, "GET", "/api/shields/shop", None, "").expect("shields");
    assert_eq!(
        body(&resp),
        json!({"schemaVersion": 1, "label": "online", "message": "2", "color": "brightgreen"})
    );
    for (path, status, code) in [
        ("/badge/shop.svg?color=nope", 400, "invalid_color"),
        ("/api/shields/shop?label=", 400, "invalid_label"),
        ("/badge/shop.png", 404, "not_found"),
        ("/badge/a%20b.svg", 400, "invalid_site_id"),
    ] {
        let err = call(&t, "GET", path, None, "").expect_err(path);
        assert_eq!((err.status(), err.code()), (status, code), "{path}");
    }
    let err = call(&t, "POST", "/badge/shop.svg", None, "").expect_err("post");
    assert_eq!(err.status(), 405);
}

#[test]
fn history_answers_each_range_and_refuses_others() {
    let t = TestServices::new();
    t.set_time(1_795_862_040_123);
    let shop = SiteId::parse("shop").expect("site");
    let now = t.clock.now.get();
    let last = Snapshot {
        slot_end_ms: now,
        count: 4,
        peak: Some(peak::Peak {
            minute: peak::minute_of(now),
            minute_peak: 6,
            day_peak: 9,
        }),
        ..Snapshot::default()
    };
    snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
    let resp = call(&t, "GET", "/api/history/shop?range=1h", None, "").expect("history");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let b = body(&resp);
    assert_eq!(
        (b["range"].clone(), b["stepSeconds"].clone()),
        (json!("1h"), json!(60))
    );
    let points = b["points"].as_array().expect("points");
    assert_eq!(points.len(), 60);
    assert_eq!(points.last(), Some(&json!(6)));
    assert_eq!(
        (b["peak"].clone(), b["todayPeak"].clone()),
        (json!(6), json!(9))
    );
    let b = body(&call(&t, "GET", "/api/history/shop?range=7d", None, "").expect("7d"));
    assert_eq!(b["stepSeconds"], 600);
    assert_eq!(
        body(&call(&t, "GET", "/api/online/shop", None, "").expect("online"))["todayPeak"],
        9
    );
    for query in ["", "?range=", "?range=2h", "?range=1H"] {
        let err = call(&t, "GET", &format!("/api/history/shop{query}"), None, "").expect_err(query);
        assert_eq!(
            (err.status(), err.code()),
            (400, "invalid_range"),
            "{query}"
        );
    }
}

#[test]
fn a_snapshot_that_outlived_its_readers_counts_nobody_and_says_it_is_stale() {
    let t = TestServices::new();
    t.set_time(1_795_862_040_123);
    let shop = SiteId::parse("shop").expect("site");
    let now = t.clock.now.get();
    // Everyone vanished without a word (a POP died): no heartbeat, no sweep, no newer
    // snapshot than this one.
    let last = Snapshot {
        slot_end_ms: now,
        count: 1000,
        ..Snapshot::default()
    };
    snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
    let online = |t: &TestServices| {
        let answer = body(&call(t, "GET", "/api/online/shop", None, "").expect("online"));
        (
            answer["online"].clone(),
            answer["stale"].clone(),
            answer["ageMs"].clone(),
            answer["asOf"].clone(),
        )
    };
    t.set_time(now + 1_500);
    let as_of = "2026-11-28T10:34:00.123Z";
    assert_eq!(
        online(&t),
        (1000.into(), false.into(), 1_500.into(), as_of.into())
    );
    let badge = call(&t, "GET", "/badge/shop.svg", None, "").expect("badge");
    assert_eq!(badge.headers()[AS_OF_HEADER], as_of);
    assert_eq!(badge.headers()[AGE_HEADER], "1500");
    assert!(String::from_utf8_lossy(badge.body()).contains(">1K<"));
    // Nobody has counted the site for longer than a count stands: 0, and said to be stale.
    let late = snapshot::lifetime_ms(&t.config) + 1;
    t.set_time(now + late);
    assert_eq!(
        online(&t),
        (0.into(), true.into(), late.into(), as_of.into())
    );
    let shields = body(&call(&t, "GET", "/api/shields/shop", None, "").expect("shields"));
    assert_eq!(
        (shields["message"].clone(), shields["color"].clone()),
        ("stale".into(), "lightgrey".into())
    );
    let badge = call(&t, "GET", "/badge/shop.svg", None, "").expect("badge");
    assert!(String::from_utf8_lossy(badge.body()).contains(">stale<"));
}

#[test]
fn reset_and_seed_need_the_admin_token() {
    let mut t = TestServices::new();
    t.set_admin_token(b"tok");
    visits(&t, "shop", 2);
    for auth in [None, Some("Bearer nope"), Some("tok")] {
        let err = call(&t, "POST", "/api/reset/shop", auth, "").expect_err("refused");
        assert_eq!(err.status(), 401, "{auth:?}");
    }
    let resp = call(&t, "POST", "/api/reset/shop", Some("Bearer tok"), "").expect("reset");
    assert_eq!(body(&resp)["message"], "Total count reset successfully");
    assert_eq!(total_of(&t, "shop"), 0);

    let resp = call(
        &t,
        "PUT",
        "/api/total/shop",
        Some("Bearer tok"),
        r#"{"totalCount":1234}"#,
    )
    .expect("seed");
    assert_eq!(body(&resp)["totalCount"], 1234);
    let resp = call(&t, "GET", "/api/total/shop", None, "").expect("total");
    assert_eq!(body(&resp)["totalCount"], 1234);
}

#[test]
fn without_a_configured_token_admin_endpoints_are_403_and_do_nothing() {
    let t = TestServices::new();
    visits(&t, "shop", 2);
    let err = call(&t, "POST", "/api/reset/shop", Some("Bearer anything"), "").expect_err("off");
    assert_eq!(err.status(), 403);
    assert_eq!(total_of(&t, "shop"), 2);
}

#[test]
fn bad_seeds_bad_sites_and_wrong_methods_are_clear_errors() {
    let mut t = TestServices::new();
    t.set_admin_token(b"tok");
    for body in [
        "",
        "{}",
        r#"{"totalCount":-1}"#,
        r#"{"totalCount":"5"}"#,
        r#"{"totalCount":1,"x":2}"#,
    ] {
        let err = call(&t, "PUT", "/api/total/shop", Some("Bearer tok"), body).expect_err("bad");
        assert_eq!(err.status(), 400, "{body}");
    }
    let err = call(&t, "GET", "/api/total/bad%20site", None, "").expect_err("bad site");
    assert_eq!(err.code(), "invalid_site_id");
    let err = call(&t, "GET", "/api/total/", None, "").expect_err("empty site");
    assert_eq!(err.status(), 400);
    let err = call(&t, "DELETE", "/api/total/shop", None, "").expect_err("method");
    assert_eq!(
        err,
        HttpError::MethodNotAllowed {
            allow: "GET, PUT, OPTIONS"
        }
    );
    let err = call(&t, "GET", "/api/reset/shop", None, "").expect_err("method");
    assert_eq!(err, HttpError::MethodNotAllowed { allow: "POST" });
    // A bad site is refused before authorization or the store are consulted.
    let err = call(&t, "POST", "/api/reset/a%2Fb", None, "").expect_err("bad site");
    assert_eq!(err.status(), 400);
    assert_eq!(t.kv.len(), 0);
}

#[test]
fn a_client_reads_its_share_a_minute_then_gets_429_with_retry_after() {
    let mut t = TestServices::new();
    t.config.limits.api_reads_per_minute = 2;
    t.set_time(1_800_000_010_000);
    // Each read names a site the POP knows nothing of, so each reaches the store.
    let sites = std::cell::Cell::new(0);
    let from = |address: &str| {
        sites.set(sites.get() + 1);
        let path = format!("/api/online/shop{}", sites.get());
        let mut req = request("GET", &path, None, "");
        req.extensions_mut().insert(ClientAddress(address.into()));
        handle(&req, &t.services()).map(|h| h.response.status().as_u16())
    };
    assert_eq!(from("192.0.2.1"), Ok(200));
    assert_eq!(from("192.0.2.1"), Ok(200));
    let err = from("192.0.2.1").expect_err("over the limit");
    assert_eq!((err.status(), err.code()), (429, "too_many_requests"));
    let refused = response::error(&err);
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"50"[..])
    );
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l == "liveuser api-limited path=/api/online/shop3"));
    // Another client is unaffected; the next minute the client reads again.
    assert_eq!(from("192.0.2.2"), Ok(200));
    t.set_time(1_800_000_060_000);
    assert_eq!(from("192.0.2.1"), Ok(200));
}

#[test]
fn answers_the_pops_cache_gives_are_not_charged() {
    // 200 readers behind one address (a company's NAT, an image proxy fetching a badge) read a
    // site whose count the POP holds: none is refused. Only reads that reach the store count.
    let mut t = TestServices::new();
    t.config.limits.api_reads_per_minute = 2;
    let now = 1_800_000_010_000;
    t.set_time(now);
    let shop = SiteId::parse("shop").expect("site");
    let last = Snapshot {
        slot_end_ms: now,
        count: 4,
        ..Snapshot::default()
    };
    snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
    let from = |path: &str| {
        let mut req = request("GET", path, None, "");
        req.extensions_mut()
            .insert(ClientAddress("192.0.2.1".into()));
        handle(&req, &t.services()).map(|h| h.response.status().as_u16())
    };
    // The first read fetches the snapshot from the store (charged); the POP keeps it a second.
    let statuses: Vec<_> = (0..200)
        .map(|n| {
            from(if n % 2 == 0 {
                "/api/online/shop"
            } else {
                "/badge/shop.svg"
            })
        })
        .collect();
    assert!(statuses.iter().all(|s| *s == Ok(200)), "{statuses:?}");
    // A site the POP knows nothing of costs store reads: charged. Found empty (no snapshot,
    // readers or visits), the POP answers it 0 for a while without asking the store again.
    // (The share of 2 is spent now: what is answered below was not charged.)
    assert_eq!(from("/api/total/elsewhere"), Ok(200));
    assert_eq!(from("/api/total/elsewhere"), Ok(200));
    assert_eq!(from("/api/online/elsewhere?page=/a"), Ok(200));
    assert_eq!(from("/badge/elsewhere.svg"), Ok(200));
    // A site it knows nothing of is charged: refused.
    let err = from("/api/total/invented").expect_err("refused");
    assert_eq!((err.status(), err.code()), (429, "too_many_requests"));
    // Its share spent, the POP's one-second copy lapsed: the newest the POP saw still answers.
    t.set_time(now + 5_000);
    assert_eq!(from("/api/online/shop"), Ok(200));
    assert_eq!(from("/badge/shop.svg"), Ok(200));
    assert!(
        from("/api/total/elsewhere").is_err(),
        "still nothing to answer with"
    );
}

#[test]
fn an_empty_site_is_answered_from_the_pop_until_a_broadcast_stores_its_snapshot() {
    let t = TestServices::new();
    let now = 1_800_000_010_000;
    t.set_time(now);
    let online = |t: &TestServices| {
        body(&call(t, "GET", "/api/online/fresh", None, "").expect("200"))["online"].clone()
    };
    assert_eq!(online(&t), 0);
    // A presence written behind the POP's back (no snapshot yet) is not seen for a while...
    let fresh = SiteId::parse("fresh").expect("site");
    let id = "0123456789abcdef0123456789abcdef".to_string();
    crate::count::presence::join(&t.kv, &t.config, &fresh, id, now).expect("join");
    t.set_time(now + 2_000);
    assert_eq!(online(&t), 0, "the POP remembers the site was empty");
    // ...but the broadcast that follows a join stores a snapshot, which answers at once.
    let last = Snapshot {
        slot_end_ms: now + 2_000,
        count: 1,
        ..Snapshot::default()
    };
    snapshot::write(&t.kv, &t.config, &fresh, &last).expect("snapshot");
    t.set_time(now + 3_500);
    assert_eq!(online(&t), 1);
}

#[test]
fn a_page_outside_the_sites_page_prefixes_has_no_count() {
    let t = TestServices::new();
    crate::count::registry::register(&t, "shop", r#"{"pages": ["/docs/"]}"#);
    let shop = SiteId::parse("shop").expect("site");
    let now = 1_800_000_010_000;
    t.set_time(now);
    let docs = page::id(&t.secrets, &shop, "/docs/a").expect("id");
    let last = Snapshot {
        slot_end_ms: now,
        count: 3,
        pages: vec![(docs, 2)],
        ..Snapshot::default()
    };
    snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
    let page_online = |page: &str| {
        let resp = call(
            &t,
            "GET",
            &format!("/api/online/shop?page={page}"),
            None,
            "",
        )
        .expect("online");
        body(&resp)["pageOnline"].clone()
    };
    assert_eq!(page_online("/docs/a"), json!(2));
    assert_eq!(page_online("/elsewhere"), serde_json::Value::Null);
}

#[test]
fn preflight_answers_cors() {
    let t = TestServices::new();
    let resp = call(&t, "OPTIONS", "/api/online/shop", None, "").expect("preflight");
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-methods"],
        "GET, OPTIONS"
    );
}

#[test]
fn ids_are_random_per_call() {
    let t = TestServices::new();
    assert_ne!(t.ids.random_u64s(), t.ids.random_u64s());
}
