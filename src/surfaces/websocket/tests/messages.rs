//! Messages on an open connection: heartbeats, bad and unknown messages, page moves, relayed
//! visits, batches over the limit.

use super::*;

#[test]
fn heartbeat_is_answered_with_the_time_and_writes_at_most_once() {
    let t = services();
    let meta = open(&t, "shop");
    let beat = websocket_events::encode(&[Event::Text(
        r#"{"type":"heartbeat","siteId":"shop","clientId":"c","timestamp":1}"#.into(),
    )]);
    // Right after open: the presence's windows are written, nothing more is.
    let handled = handle(&call("", &with_meta(&meta), &beat), &t.services()).expect("beat");
    assert_eq!(
        events(&handled),
        vec![Event::Text(format!(
            r#"{{"type":"heartbeat","timestamp":{}}}"#,
            NOW_MS / 1000
        ))]
    );
    assert_eq!(t.kv.len(), 2);
    // An interval later: exactly one new key (the window the presence now reaches), and the
    // lease in meta names the windows not ended.
    t.set_time(NOW_MS + 30_000);
    let handled = handle(&call("", &with_meta(&meta), &beat), &t.services()).expect("beat");
    assert_eq!(t.kv.len(), 3);
    let windows = set_meta(&handled, "Presence-Windows").expect("lease updated");
    assert_eq!(windows.split(',').count(), 2);
}

#[test]
fn bad_messages_close_with_their_code_and_remove_presence() {
    let cases: [(Event, u16); 3] = [
        (Event::Text("{oops".into()), 1007),
        (
            Event::Text(format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000))),
            1009,
        ),
        (Event::Binary(vec![1]), 1003),
    ];
    for (event, code) in cases {
        let t = services();
        let meta = open(&t, "shop");
        let body =
            websocket_events::encode(&[event, Event::Text(r#"{"type":"heartbeat"}"#.into())]);
        let handled = handle(&call("", &with_meta(&meta), &body), &t.services()).expect("handled");
        let replies = events(&handled);
        assert_eq!(replies.len(), 1, "nothing after the close: {replies:?}");
        assert!(matches!(replies[0], Event::Close { code: Some(c), .. } if c == code));
        assert_eq!(t.kv.len(), 0);
    }
}

#[test]
fn unknown_messages_and_pings_are_harmless() {
    let t = services();
    let meta = open(&t, "shop");
    let body = websocket_events::encode(&[
        Event::Text(r#"{"type":"future-thing"}"#.into()),
        Event::Ping(b"p".to_vec()),
    ]);
    let handled = handle(&call("", &with_meta(&meta), &body), &t.services()).expect("handled");
    assert_eq!(events(&handled), vec![Event::Pong(b"p".to_vec())]);
    assert_eq!(t.kv.len(), 2);
}

#[test]
fn a_page_reader_is_counted_on_its_page_in_one_write_and_moves_with_the_app() {
    let t = services();
    let shop = SiteId::parse("shop").expect("site");
    let (docs, blog) = (
        page::id(&t.secrets, &shop, "/docs").expect("id"),
        page::id(&t.secrets, &shop, "/blog").expect("id"),
    );
    let last = snapshot::Snapshot {
        slot_end_ms: NOW_MS - 60_000,
        count: 5,
        total: None,
        pages: vec![(docs.clone(), 2)],
        peak: None,
        countries: Vec::new(),
    };
    snapshot::write(&t.kv, &t.config, &shop, &last).expect("snapshot");
    let kv = crate::platform::kv::CountingKv::new(&t.kv);
    let counted = Services {
        kv: &kv,
        ..t.services()
    };
    let opened =
        handle(&call("?siteId=shop&page=/docs", &[], b"OPEN\r\n"), &counted).expect("open");
    assert_eq!(
        events(&opened)[1..],
        [
            grip::subscribe("site:shop"),
            grip::subscribe(&format!("page:shop:{docs}")),
        ]
    );
    assert_eq!(set_meta(&opened, META_PAGE), Some(docs.clone()));
    assert_eq!(
        kv.counts().insert,
        3,
        "the page rides the presence keys; its name is kept once for the dashboard"
    );
    // The page itself is stored only under its name key, for the site's dashboard.
    let name_key = page::name_key(&shop, &docs);
    assert!(t
        .kv
        .keys()
        .iter()
        .all(|k| !k.contains("docs") || *k == name_key));
    assert_eq!(page::names(&t.services(), &shop, &[&docs])[&docs], "/docs");
    let mut meta = meta_of(&opened);
    let say = |meta: &[(&'static str, String)], text: &str| {
        let body = websocket_events::encode(&[Event::Text(text.into())]);
        handle(&call("", &with_meta(meta), &body), &t.services()).expect("reply")
    };
    let joined = say(&meta, r#"{"type":"join"}"#);
    assert_eq!(
        events(&joined).last(),
        Some(&Event::Text(
            r#"{"type":"update","count":6,"pageCount":3,"slot":1799999940000}"#.into()
        ))
    );
    // A move (even right after the join's write: the new key has its own name) writes
    // one key, deletes the old one, the subscriptions follow, and the reply has the new
    // page's count (the site count is the snapshot's: the reader was counted already).
    t.set_time(NOW_MS + 2_000);
    let moved = say(&meta, r#"{"type":"page","page":"/blog"}"#);
    assert_eq!(
        events(&moved),
        vec![
            grip::unsubscribe(&format!("page:shop:{docs}")),
            grip::subscribe(&format!("page:shop:{blog}")),
            Event::Text(r#"{"type":"update","count":5,"pageCount":1,"slot":1799999940000}"#.into()),
        ]
    );
    assert!(moved.broadcast.is_some(), "a move claims a broadcast");
    let census = census_at(&t, &shop, NOW_MS + 2_000);
    assert_eq!((census.live, census.pages.get(&blog)), (1, Some(&1)));
    assert_eq!(census.pages.get(&docs), None);
    meta.retain(|(n, _)| ![META_PRESENCE_WINDOWS, META_PAGE].contains(n));
    meta.extend(meta_of(&moved));
    // Off pages: unsubscribed, still counted on the site.
    t.set_time(NOW_MS + 4_000);
    let off = say(&meta, r#"{"type":"page","page":null}"#);
    assert_eq!(
        events(&off),
        vec![grip::unsubscribe(&format!("page:shop:{blog}"))]
    );
    assert_eq!(set_meta(&off, META_PAGE).as_deref(), Some(""));
    let census = census_at(&t, &shop, NOW_MS + 4_000);
    assert_eq!((census.live, census.pages.len()), (1, 0));
    // A connection has a budget of moves.
    let mut spent = meta.clone();
    spent.retain(|(n, _)| *n != META_PAGE_MOVES);
    spent.push((META_PAGE_MOVES, page::MAX_MOVES.to_string()));
    let refused = say(&spent, r#"{"type":"page","page":"/docs"}"#);
    assert!(events(&refused).is_empty());
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l.contains("page-move-limited")));
    assert_eq!(
        set_meta(&moved, META_PAGE_MOVES).as_deref(),
        Some("1"),
        "moves are counted in meta"
    );
    // A page name that is not one closes with 1007; so does a page that is not a string.
    for bad in [
        r#"{"type":"page","page":"a b"}"#,
        r#"{"type":"page","page":5}"#,
    ] {
        let refused = say(&meta, bad);
        assert!(
            matches!(
                events(&refused).last(),
                Some(Event::Close {
                    code: Some(1007),
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_holding_tab_relays_other_tabs_visits_up_to_its_share() {
    let t = services();
    let opened = handle(
        &call(
            "?siteId=shop&enableTotalCount=true&shareTabs=1",
            &[],
            b"OPEN\r\n",
        ),
        &t.services(),
    )
    .expect("open");
    let mut meta = meta_of(&opened);
    let visit = websocket_events::encode(&[Event::Text(r#"{"type":"visit"}"#.into())]);
    let site = SiteId::parse("shop").expect("site");
    let total = || {
        totals::settle(&t.kv, &site, t.clock.now.get() + 10_000, false)
            .expect("total")
            .total
    };
    assert_eq!(total(), 1);
    for _ in 0..handover::MAX_RELAYED_VISITS + 5 {
        let relayed = handle(&call("", &with_meta(&meta), &visit), &t.services()).expect("visit");
        if let Some(n) = set_meta(&relayed, META_RELAYED_VISITS) {
            meta.retain(|(k, _)| *k != META_RELAYED_VISITS);
            meta.push((META_RELAYED_VISITS, n));
        }
    }
    assert_eq!(total(), 1 + u64::from(handover::MAX_RELAYED_VISITS));
    // A count-only connection relays nothing.
    let plain = handle(&call("?siteId=plain", &[], b"OPEN\r\n"), &t.services()).expect("open");
    handle(
        &call("", &with_meta(&meta_of(&plain)), &visit),
        &t.services(),
    )
    .expect("visit");
    let plain_site = SiteId::parse("plain").expect("site");
    let plain_total = totals::settle(&t.kv, &plain_site, NOW_MS + 10_000, false)
        .expect("total")
        .total;
    assert_eq!(plain_total, 0);
}

#[test]
fn a_batch_over_the_size_limit_closes_its_connection_with_1009_in_a_200() {
    let t = services();
    let meta = open(&t, "shop");
    assert_eq!(t.kv.len(), 2);
    let huge = vec![b'x'; websocket_events::MAX_BODY_BYTES + 1];
    let handled = handle(&call("", &with_meta(&meta), &huge), &t.services()).expect("200");
    assert_eq!(handled.response.status(), 200);
    assert!(matches!(
        events(&handled)[..],
        [Event::Close {
            code: Some(1009),
            ..
        }]
    ));
    assert_eq!(t.kv.len(), 0, "its presence is gone at once");
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l.starts_with("liveuser ws-close conn=conn-1 site=shop code=1009")));
    // Even a connection this service never opened is closed, not refused.
    let handled = handle(&call("", &[], &huge), &t.services()).expect("200");
    assert!(matches!(
        events(&handled)[..],
        [Event::Close {
            code: Some(1009),
            ..
        }]
    ));
    // A forged one is still refused first.
    let mut forged = call("", &with_meta(&meta), &huge);
    forged.headers_mut().remove("Grip-Sig");
    assert_eq!(
        handle(&forged, &t.services())
            .map(|_| ())
            .map_err(|e| e.status()),
        Err(403)
    );
}

#[test]
fn a_heartbeat_after_the_connection_left_writes_nothing() {
    let t = services();
    let meta = open(&t, "shop");
    let closed = handle(
        &call("", &with_meta(&meta), b"CLOSE 2\r\n\x03\xe8\r\n"),
        &t.services(),
    )
    .expect("close");
    let left = vec![
        ("Site", "shop".to_string()),
        ("Presence-Id", set_meta(&closed, "Presence-Id").expect("id")),
        (
            "Presence-Windows",
            set_meta(&closed, "Presence-Windows").unwrap_or_default(),
        ),
    ];
    assert_eq!(t.kv.len(), 0);
    t.set_time(NOW_MS + 60_000);
    let beat = websocket_events::encode(&[Event::Text(r#"{"type":"heartbeat"}"#.into())]);
    handle(&call("", &with_meta(&left), &beat), &t.services()).expect("beat");
    assert_eq!(
        t.kv.len(),
        0,
        "a late heartbeat must not bring the connection back"
    );
}

fn census_at(t: &TestServices, site: &SiteId, at_ms: u64) -> crate::count::tally::Tally {
    let window = presence::window_of(&t.config, at_ms);
    crate::count::tally::tally(&t.kv, site, window, "").expect("census")
}

#[test]
fn a_batch_makes_only_its_last_page_move_and_moves_wait_their_turn() {
    let t = services();
    let shop = SiteId::parse("shop").expect("site");
    let id = |p: &str| page::id(&t.secrets, &shop, p).expect("id");
    let opened = handle(
        &call("?siteId=shop&page=/a", &[], b"OPEN\r\n"),
        &t.services(),
    )
    .expect("open");
    let mut meta = meta_of(&opened);
    let send = |meta: &[(&'static str, String)], texts: &[&str]| {
        let body = websocket_events::encode(
            &texts
                .iter()
                .map(|t| Event::Text(t.to_string()))
                .collect::<Vec<_>>(),
        );
        handle(&call("", &with_meta(meta), &body), &t.services()).expect("reply")
    };
    let on_page = |at: u64| {
        let census = census_at(&t, &shop, at);
        let mut pages: Vec<String> = census.pages.keys().cloned().collect();
        pages.sort();
        pages
    };
    let update = |meta: &mut Vec<(&'static str, String)>, handled: &Handled| {
        let set = meta_of(handled);
        meta.retain(|(n, _)| !set.iter().any(|(m, _)| m == n));
        meta.extend(set);
    };
    // Fifty moves in one batch: one is made, the last, with one key written.
    t.set_time(NOW_MS + 1_000);
    let many: Vec<String> = (0..50)
        .map(|n| format!(r#"{{"type":"page","page":"/p{n}"}}"#))
        .collect();
    let kv_before = t.kv.len();
    let moved = send(&meta, &many.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(on_page(NOW_MS + 1_000), vec![id("/p49")]);
    assert_eq!(
        t.kv.len(),
        kv_before + 1,
        "the old page's key gone, the new one's written, and the last page's name kept"
    );
    assert_eq!(set_meta(&moved, META_PAGE_MOVES).as_deref(), Some("1"));
    update(&mut meta, &moved);
    // Another move within two seconds waits, in meta, and moves nothing yet;
    t.set_time(NOW_MS + 2_000);
    let early = send(&meta, &[r#"{"type":"page","page":"/b"}"#]);
    assert_eq!(events(&early), vec![]);
    assert_eq!(set_meta(&early, "Page-Pending"), Some(id("/b")));
    assert_eq!(on_page(NOW_MS + 2_000), vec![id("/p49")]);
    update(&mut meta, &early);
    // a heartbeat before its turn does not make it,
    t.set_time(NOW_MS + 2_500);
    let beat = send(&meta, &[r#"{"type":"heartbeat"}"#]);
    assert_eq!(on_page(NOW_MS + 2_500), vec![id("/p49")]);
    update(&mut meta, &beat);
    // and the first request after it does: the reply has the new page's subscription.
    t.set_time(NOW_MS + 3_000);
    let due = send(&meta, &[r#"{"type":"heartbeat"}"#]);
    assert!(events(&due).contains(&grip::subscribe(&format!("page:shop:{}", id("/b")))));
    assert_eq!(on_page(NOW_MS + 3_000), vec![id("/b")]);
    assert_eq!(set_meta(&due, "Page-Pending").as_deref(), Some(""));
    assert_eq!(set_meta(&due, META_PAGE_MOVES).as_deref(), Some("2"));
}
