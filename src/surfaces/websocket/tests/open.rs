//! OPEN and the first `join`: admission, subscriptions, meta, the first count.

use super::*;

#[test]
fn open_accepts_subscribes_binds_the_site_and_writes_its_presence() {
    let t = services();
    let handled = handle(
        &call("?siteId=shop&clientId=abc", &[], b"OPEN\r\n"),
        &t.services(),
    )
    .expect("open");
    let resp = &handled.response;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/websocket-events"
    );
    assert_eq!(
        resp.headers()["sec-websocket-extensions"],
        "grip; message-prefix=\"\""
    );
    assert_eq!(set_meta(&handled, "Site").as_deref(), Some("shop"));
    assert_eq!(
        events(&handled),
        vec![
            Event::Open,
            Event::Text(r#"c:{"type":"subscribe","channel":"site:shop"}"#.into()),
        ]
    );
    assert_eq!(t.kv.len(), 2, "a key for each window its presence reaches");
    assert!(t.kv.keys().iter().all(|k| k.starts_with("site/shop/p/")));
    assert!(
        handled.broadcast.is_some(),
        "the first change of a slot wins its broadcast"
    );
}

#[test]
fn a_forged_or_missing_signature_is_403_and_touches_nothing() {
    let t = services();
    let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
    req.headers_mut().remove("Grip-Sig");
    assert!(matches!(
        handle(&req, &t.services()),
        Err(HttpError::NotSigned { .. })
    ));
    let forged = hs256_token(b"wrong", "pushpin", NOW_MS / 1000 + 3600);
    req.headers_mut()
        .insert("Grip-Sig", forged.parse().expect("header"));
    let err = handle(&req, &t.services()).expect_err("refused");
    assert_eq!(err.status(), 403);
    assert_eq!(t.kv.len(), 0);
}

#[test]
fn a_bad_site_is_400_before_any_write() {
    let t = services();
    for query in ["?siteId=a%20b", "?siteId=", "?siteId=%2e%2e"] {
        let err = handle(&call(query, &[], b"OPEN\r\n"), &t.services()).expect_err("refused");
        assert_eq!(err.status(), 400, "{query}");
    }
    assert_eq!(t.kv.len(), 0);
    assert!(t.publisher.published.borrow().is_empty());
}

#[test]
fn the_site_comes_from_meta_not_from_what_the_client_says() {
    let t = services();
    let meta = open(&t, "shop");
    let join = br#"{"type":"join","siteId":"other","clientId":"c"}"#;
    let body = websocket_events::encode(&[Event::Text(String::from_utf8_lossy(join).into())]);
    // Even a query naming another site changes nothing once the meta is set.
    let handled = handle(
        &call("?siteId=other", &with_meta(&meta), &body),
        &t.services(),
    )
    .expect("join");
    // Its reply names its presence (for a reconnect to take) and gives shop's count (a new
    // site: this page).
    let id = &meta
        .iter()
        .find(|(n, _)| *n == "Presence-Id")
        .expect("id")
        .1;
    assert_eq!(
        events(&handled),
        vec![
            Event::Text(format!(r#"{{"type":"handover","token":"{id}"}}"#)),
            Event::Text(r#"{"type":"update","count":1}"#.into())
        ]
    );
    assert!(t.kv.keys().iter().all(|k| k.starts_with("site/shop/p/")));
    if let Some(plan) = handled.broadcast {
        assert_eq!(plan.site.as_str(), "shop");
    }
}

#[test]
fn events_without_open_or_meta_are_refused() {
    let t = services();
    let err = handle(&call("?siteId=shop", &[], b"DISCONNECT\r\n"), &t.services()).err();
    assert_eq!(err.map(|e| e.status()), Some(400));
    let err = handle(
        &call(
            "",
            &[("Site", "shop"), ("Presence-Id", "../../x")],
            b"DISCONNECT\r\n",
        ),
        &t.services(),
    )
    .err();
    assert_eq!(err.map(|e| e.status()), Some(400));
}

#[test]
fn an_allow_list_refuses_other_origins_at_open() {
    let t = services();
    crate::count::registry::register(&t, "shop", r#"{"origins": ["https://shop.example"]}"#);
    let registered = t.kv.len();
    let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
    let err = handle(&req, &t.services()).expect_err("no origin");
    assert_eq!(err.status(), 403);
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    let err = handle(&req, &t.services()).expect_err("foreign origin");
    assert_eq!(err.status(), 403);
    assert_eq!(t.kv.len(), registered);
    req.headers_mut()
        .insert("origin", "https://SHOP.example".parse().expect("header"));
    assert!(handle(&req, &t.services()).is_ok());
    // Sites without a list stay open to all.
    assert!(handle(&call("?siteId=other", &[], b"OPEN\r\n"), &t.services()).is_ok());
}

#[test]
fn the_join_reply_carries_the_count_with_this_page_and_the_total_with_this_visit() {
    let t = services();
    // A settled site: its last broadcast, a minute ago, said 5 readers and 10 visits.
    let last = snapshot::Snapshot {
        slot_end_ms: NOW_MS - 60_000,
        count: 5,
        total: Some(10),
        pages: Vec::new(),
        peak: None,
        countries: Vec::new(),
    };
    let shop = SiteId::parse("shop").expect("site");
    snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
    let kv = crate::platform::kv::CountingKv::new(&t.kv);
    let counted = Services {
        kv: &kv,
        ..t.services()
    };
    // The reply's count (it also names the connection's presence, which a reconnect takes).
    let first = |query: &str| {
        events(&open_and_join(&t, &counted, query))
            .into_iter()
            .rfind(|e| matches!(e, Event::Text(text) if text.contains(r#""type":"update""#)))
    };
    let update = |json: &str| Some(Event::Text(json.into()));
    assert_eq!(
        first("?siteId=shop&enableTotalCount=true"),
        update(r#"{"type":"update","count":6,"totalCount":11,"slot":1799999940000}"#)
    );
    // A page that is not a new visit adds none; a count-only page is told no total.
    assert_eq!(
        first("?siteId=shop&enableTotalCount=true&visit=0"),
        update(r#"{"type":"update","count":6,"totalCount":10,"slot":1799999940000}"#)
    );
    assert_eq!(
        first("?siteId=shop"),
        update(r#"{"type":"update","count":6,"slot":1799999940000}"#)
    );
    // No listing: the snapshot's two keys and the site's registry entry read once, then from
    // the POP's cache.
    let counts = kv.counts();
    assert_eq!((counts.list, counts.lookup), (0, 3));
    // Once a reader has left, the snapshot counts one too many until the next broadcast:
    // a new page waits for that broadcast rather than be told a number that will drop.
    let meta = open(&t, "shop");
    let bye = websocket_events::encode(&[Event::close(1000, "")]);
    handle(&call("", &with_meta(&meta), &bye), &counted).expect("close");
    assert_eq!(first("?siteId=shop"), None);
}

#[test]
fn a_page_parameter_that_is_not_a_page_refuses_the_upgrade() {
    let t = services();
    for query in [
        "?siteId=shop&page=",
        "?siteId=shop&page=a%20b",
        "?siteId=shop&page=%C3%A9",
    ] {
        let err = handle(&call(query, &[], b"OPEN\r\n"), &t.services()).expect_err(query);
        assert_eq!(err.status(), 400, "{query}");
    }
    assert_eq!(t.kv.len(), 0);
}

#[test]
fn only_the_first_join_of_a_connection_claims_a_broadcast() {
    let t = services();
    let meta = open(&t, "shop");
    let join = websocket_events::encode(&[Event::Text(r#"{"type":"join"}"#.into())]);
    t.set_time(NOW_MS + 1_000);
    let first = handle(&call("", &with_meta(&meta), &join), &t.services()).expect("join");
    assert!(first.broadcast.is_some(), "the first join claims its slot");
    let mut joined = meta.clone();
    joined.push((
        "Joined",
        set_meta(&first, "Joined").expect("meta says joined"),
    ));
    // Later joins, even in slots nobody has claimed yet, claim nothing.
    for n in 2..5 {
        t.set_time(NOW_MS + n * 1_000);
        let again = handle(&call("", &with_meta(&joined), &join), &t.services()).expect("join");
        assert!(again.broadcast.is_none(), "join {n}");
    }
}

#[test]
fn an_unregistered_site_is_refused_before_anything_is_stored() {
    let mut t = services();
    t.config.unregistered_sites = crate::platform::config::UnregisteredSites::Refuse;
    crate::count::registry::register(&t, "shop", "{}");
    crate::count::registry::register(&t, "blog", "{}");
    let err = handle(&call("?siteId=other", &[], b"OPEN\r\n"), &t.services()).expect_err("unknown");
    assert_eq!((err.status(), err.code()), (404, "unknown_site"));
    assert_eq!(t.kv.len(), 2, "the two registrations only");
    assert!(handle(&call("?siteId=blog", &[], b"OPEN\r\n"), &t.services()).is_ok());
    let other = crate::surfaces::serve::UpgradeRequest {
        path: "/ws",
        query: Some("siteId=other"),
        ..Default::default()
    };
    let upgrade = crate::surfaces::serve::upgrade(&t.services(), &other);
    assert!(matches!(upgrade, crate::surfaces::serve::Upgrade::Refuse(r) if r.status() == 404));
}

#[test]
fn an_uncounted_connection_sees_the_count_and_is_not_in_it() {
    let t = services();
    let mut req = call("?siteId=shop&enableTotalCount=1", &[], b"OPEN\r\n");
    req.headers_mut()
        .insert(UNCOUNTED_HEADER, "1".parse().expect("header"));
    let opened = handle(&req, &t.services()).expect("open");
    assert_eq!(events(&opened)[1..], [grip::subscribe("site-totals:shop")]);
    assert_eq!(t.kv.len(), 0, "no presence, no visit");
    assert!(opened.broadcast.is_none());
    let meta = meta_of(&opened);
    let say = |text: &str| {
        let body = websocket_events::encode(&[Event::Text(text.into())]);
        handle(&call("", &with_meta(&meta), &body), &t.services()).expect("reply")
    };
    // Its first count leaves it out; heartbeats and its close write nothing.
    let joined = say(r#"{"type":"join"}"#);
    assert_eq!(
        events(&joined).last(),
        Some(&Event::Text(r#"{"type":"update","count":0}"#.into()))
    );
    say(r#"{"type":"heartbeat"}"#);
    let bye = websocket_events::encode(&[Event::close(1000, "")]);
    handle(&call("", &with_meta(&meta), &bye), &t.services()).expect("close");
    assert_eq!(t.kv.len(), 0);
    assert_eq!(live(&t, "shop", NOW_MS), 0);
}

#[test]
fn an_uncounted_socket_keeps_its_ticket_while_it_is_held() {
    use crate::count::limits::{self, ClientKey, SocketAdmission};
    use crate::surfaces::handoff::{CLIENT_HEADER, TICKET_HEADER};
    let t = services();
    let shop = SiteId::parse("shop").expect("site");
    let client = ClientKey::parse(&"ab".repeat(16)).expect("key");
    let ttl = limits::socket_ticket_ttl_ms(&t.config);
    let take = || limits::take_socket(&t.cache, &t.config.limits, &shop, &client, ttl);
    assert_eq!(take(), SocketAdmission::Ticket(0));
    let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
    for (name, value) in [
        (UNCOUNTED_HEADER, "1".to_string()),
        (CLIENT_HEADER, client.as_str().to_string()),
        (TICKET_HEADER, "0".to_string()),
    ] {
        req.headers_mut()
            .insert(name, value.parse().expect("header"));
    }
    let opened = handle(&req, &t.services()).expect("open");
    let mut meta = meta_of(&opened);
    for name in [META_CLIENT, META_TICKET] {
        meta.extend(set_meta(&opened, name).map(|v| (name, v)));
    }
    // Held for three ticket lifetimes, kept alive by Fanout's calls (no presence to refresh):
    for n in 1..=6 {
        t.set_time(NOW_MS + n * ttl / 2);
        handle(&call("", &with_meta(&meta), b""), &t.services()).expect("keep-alive");
    }
    // its ticket is still taken, so the client's next socket gets the next one.
    assert_eq!(take(), SocketAdmission::Ticket(1));
    assert_eq!(t.kv.len(), 0, "and it wrote no presence");
}

#[test]
fn a_header_that_is_not_utf8_is_a_400_not_a_panic() {
    let t = services();
    let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
    req.headers_mut().insert(
        "Connection-Id",
        http::HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes"),
    );
    assert_eq!(
        handle(&req, &t.services())
            .map(|_| ())
            .map_err(|e| e.status()),
        Err(400)
    );
    let mut req = call("?siteId=shop", &[], b"OPEN\r\n");
    req.headers_mut().insert(
        "Grip-Sig",
        http::HeaderValue::from_bytes(b"\xff").expect("opaque bytes"),
    );
    assert_eq!(
        handle(&req, &t.services())
            .map(|_| ())
            .map_err(|e| e.status()),
        Err(403)
    );
    assert_eq!(t.kv.len(), 0);
}
