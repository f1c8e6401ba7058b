//! Closing: close and disconnect, the handover between tabs, echoed close codes, error bodies.

use super::*;

#[test]
fn close_and_disconnect_delete_the_presence_at_once() {
    for (body, reply) in [
        (
            &b"CLOSE 2\r\n\x03\xe8\r\n"[..],
            vec![Event::close(1000, "")],
        ),
        (b"DISCONNECT\r\n", vec![]),
    ] {
        let t = services();
        let meta = open(&t, "shop");
        let other = open(&t, "shop");
        assert_eq!(t.kv.len(), 4, "two windows each");
        let handled = handle(&call("", &with_meta(&meta), body), &t.services()).expect("close");
        assert_eq!(events(&handled), reply);
        assert_eq!(t.kv.len(), 2);
        assert_eq!(set_meta(&handled, "Presence-Windows").as_deref(), Some(""));
        drop(other);
    }
}

#[test]
fn a_closing_tab_hands_its_presence_to_the_tab_that_takes_over() {
    let t = services();
    let opened = handle(
        &call("?siteId=shop&shareTabs=1", &[], b"OPEN\r\n"),
        &t.services(),
    )
    .expect("open");
    let join = websocket_events::encode(&[Event::Text(r#"{"type":"join"}"#.into())]);
    let joined = handle(
        &call("", &with_meta(&meta_of(&opened)), &join),
        &t.services(),
    )
    .expect("join");
    let token = events(&joined)
        .iter()
        .find_map(|e| match e {
            Event::Text(text) => serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .filter(|m| m["type"] == "handover")
                .and_then(|m| m["token"].as_str().map(str::to_string)),
            _ => None,
        })
        .expect("a handover token");
    // It closes, handing over: its presence stays and nothing is broadcast.
    let bye = websocket_events::encode(&[Event::close(handover::CLOSE_CODE, "")]);
    let closed = handle(
        &call("", &with_meta(&meta_of(&opened)), &bye),
        &t.services(),
    )
    .expect("close");
    assert!(closed.broadcast.is_none());
    assert_eq!(live(&t, "shop", NOW_MS + 1_000), 1);
    // The next tab takes it over: still one reader, before and after the old key expires.
    t.set_time(NOW_MS + 2_000);
    let query = format!("?siteId=shop&shareTabs=1&visit=0&handover={token}");
    let next = handle(&call(&query, &[], b"OPEN\r\n"), &t.services()).expect("open");
    assert_eq!(
        set_meta(&next, "Presence-Id").as_deref(),
        Some(token.as_str())
    );
    assert_eq!(live(&t, "shop", NOW_MS + 3_000), 1);
    assert_eq!(live(&t, "shop", NOW_MS + 46_500), 1);
    // A presence nobody takes over expires with its TTL.
    let alone = handle(
        &call("?siteId=alone&shareTabs=1", &[], b"OPEN\r\n"),
        &t.services(),
    )
    .expect("open");
    handle(&call("", &with_meta(&meta_of(&alone)), &bye), &t.services()).expect("close");
    assert_eq!(live(&t, "alone", NOW_MS + 3_000), 1);
    assert_eq!(live(&t, "alone", NOW_MS + 60_000), 0);
    // A token this service could not have made is refused.
    let err = handle(
        &call("?siteId=shop&handover=nope", &[], b"OPEN\r\n"),
        &t.services(),
    )
    .expect_err("bad token");
    assert_eq!(err.status(), 400);
}

#[test]
fn a_socket_that_is_no_tab_group_s_leaves_on_a_handover_close() {
    let t = services();
    let meta = open(&t, "solo");
    assert_eq!(live(&t, "solo", NOW_MS + 1_000), 1);
    let bye = websocket_events::encode(&[Event::close(handover::CLOSE_CODE, "")]);
    let closed = handle(&call("", &with_meta(&meta), &bye), &t.services()).expect("close");
    assert_eq!(
        events(&closed),
        vec![Event::close(handover::CLOSE_CODE, "")]
    );
    assert_eq!(
        live(&t, "solo", NOW_MS + 1_000),
        0,
        "its presence is gone at once"
    );
}

#[test]
fn a_close_is_echoed_only_with_a_code_that_may_be_sent() {
    for (sent, echoed) in [
        (Some(4001), 4001),
        (Some(1005), 1000),
        (Some(1006), 1000),
        (Some(999), 1000),
        (Some(1015), 1000),
        (Some(1016), 1000),
        (Some(2000), 1000),
        (Some(1011), 1011),
        (Some(3000), 3000),
        (Some(5000), 1000),
        (None, 1000),
    ] {
        let t = services();
        let meta = open(&t, "shop");
        let body = websocket_events::encode(&[Event::Close {
            code: sent,
            reason: String::new(),
        }]);
        let handled = handle(&call("", &with_meta(&meta), &body), &t.services()).expect("close");
        assert_eq!(events(&handled), vec![Event::close(echoed, "")], "{sent:?}");
    }
}

#[test]
fn an_error_body_names_no_store_and_no_internal_error_but_the_log_does() {
    let t = services();
    let mut s = t.services();
    s.kv = &crate::platform::testing::Down;
    let err = handle(&call("?siteId=shop", &[], b"OPEN\r\n"), &s).expect_err("store down");
    assert_eq!(err.status(), 503);
    let body = String::from_utf8_lossy(crate::wire::response::error(&err).body()).into_owned();
    assert!(
        !body.contains("liveuser") && !body.contains("internal error"),
        "{body}"
    );
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l.contains("presence-join-failed") && l.contains("internal error 42")));
}
