// The tests mint Grip-Sig tokens with the testkit (native only).
use http::Request;
use serde_json::json;

use super::*;
use crate::count::limits::{self, ClientKey, SocketAdmission};
use crate::count::page;
use crate::platform::testing::{TestServices, TEST_GRIP_KEY};
use crate::surfaces::handoff::{CLIENT_HEADER, TICKET_HEADER, UNCOUNTED_HEADER};
use crate::wire::grip;
use crate::wire::site::SiteId;
use liveuser_testkit::jwt::hs256_token;

const NOW_MS: u64 = 1_800_000_000_000;

fn services() -> TestServices {
    let t = TestServices::new();
    t.set_time(NOW_MS);
    t
}

fn request(method: &str, uri: &str, signed: bool, body: &str) -> Request<Vec<u8>> {
    let mut builder = Request::builder().method(method).uri(uri);
    if signed {
        let token = hs256_token(TEST_GRIP_KEY, "pushpin", NOW_MS / 1000 + 3600);
        builder = builder.header(grip::SIGNATURE_HEADER, token);
    }
    builder.body(body.as_bytes().to_vec()).expect("request")
}

fn session_in(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let v: serde_json::Value = serde_json::from_str(data).expect("json");
    v["session"].as_str().expect("session").to_string()
}

/// The path of the next link a held stream's answer names, and its timeout.
fn next_link(handled: &Handled) -> (String, String) {
    let link = handled.response.headers()[grip::LINK_HEADER]
        .to_str()
        .expect("text");
    let (uri, params) = link.split_once(">; ").expect("a link");
    assert!(params.starts_with("rel=next; timeout="), "{link}");
    let path = uri.trim_start_matches('<').to_string();
    assert!(path.starts_with(ALIVE_PREFIX), "{link}");
    (path, params["rel=next; timeout=".len()..].to_string())
}

fn open(t: &TestServices, query: &str) -> Handled {
    handle(
        &request("GET", &format!("/sse?{query}"), true, ""),
        &t.services(),
    )
    .expect("open")
}

/// Fanout's call on `path`, signed.
fn call(t: &TestServices, path: &str) -> Handled {
    handle(&request("GET", path, true, ""), &t.services()).expect("alive")
}

fn held(handled: &Handled) -> bool {
    handled
        .response
        .headers()
        .get(grip::HOLD_HEADER)
        .map(|v| v.as_bytes())
        == Some(b"stream")
}

#[test]
fn a_stream_is_held_on_its_channels_with_its_session_and_first_count() {
    let t = services();
    let opened = open(&t, "siteId=shop&page=/docs");
    let resp = &opened.response;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(held(&opened));
    let shop = SiteId::parse("shop").expect("site");
    let page_id = page::id(&t.secrets, &shop, "/docs").expect("id");
    let key = session_keys(&t.services()).expect("a key");
    let session = Session::verify(&session_in(resp.body()), &key).expect("session");
    assert_eq!(
        resp.headers()["grip-channel"],
        format!(
            "site:shop, page:shop:{page_id}, stream:shop:{}",
            session.stream
        )
        .as_str(),
        "its own channel, never published on, keeps Fanout's calls coming on a busy site"
    );
    assert_eq!(next_link(&opened).1, "30", "one heartbeat interval");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let body = String::from_utf8_lossy(resp.body()).into_owned();
    assert!(body.starts_with("event: session\ndata: "), "{body}");
    assert!(body.ends_with("data: {\"type\":\"update\",\"count\":1,\"pageCount\":1}\n\n"));
    assert_eq!(
        t.kv.len(),
        3,
        "one presence key a window its lifetime reaches, and the page's name for the dashboard"
    );
    assert!(opened.broadcast.is_some());
    assert_eq!(session.lease.page.as_deref(), Some(page_id.as_str()));
    // The link names the same session under the link key: the browser's copy is no link, and
    // the link is no session a browser could leave with.
    let token = next_link(&opened).0[ALIVE_PREFIX.len()..].to_string();
    let link_key = session::link_keys(&t.services()).expect("a key");
    assert_eq!(
        Session::from_link_token(&token, &link_key),
        Ok(session.clone())
    );
    assert!(Session::from_link_token(&token, &key).is_err());
    let browsers = session_in(resp.body());
    use base64::Engine;
    let as_link = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&browsers);
    assert!(Session::from_link_token(&as_link, &link_key).is_err());
}

#[test]
fn only_fanout_may_open_a_stream_or_call_its_link() {
    let t = services();
    let err = handle(
        &request("GET", "/sse?siteId=shop", false, ""),
        &t.services(),
    )
    .expect_err("unsigned");
    assert_eq!(err.status(), 403);
    assert_eq!(t.kv.len(), 0);
    let err = handle(
        &request("GET", "/sse?siteId=a%20b", true, ""),
        &t.services(),
    )
    .expect_err("bad site");
    assert_eq!(err.code(), "invalid_site_id");
    // A link replayed by anyone but Fanout renews nothing.
    let opened = open(&t, "siteId=shop");
    let (link, _) = next_link(&opened);
    t.set_time(NOW_MS + 20_000);
    let err = handle(&request("GET", &link, false, ""), &t.services()).expect_err("unsigned");
    assert_eq!(err.status(), 403);
    assert_eq!(t.kv.len(), 2, "no third window written");
    let err = handle(&request("POST", &link, true, ""), &t.services()).expect_err("post");
    assert_eq!(err.status(), 405);
}

#[test]
fn fanouts_calls_keep_the_presence_while_the_stream_is_held_and_no_longer() {
    let t = services();
    let shop = SiteId::parse("shop").expect("site");
    let live = |at: u64| crate::count::tally::count(&t.kv, &t.config, &shop, at).expect("count");
    let opened = open(&t, "siteId=shop");
    let (mut link, _) = next_link(&opened);
    // Fanout calls every 30 s while it holds the stream: the reader stays counted.
    for n in 1..=4 {
        t.set_time(NOW_MS + n * 30_000);
        let answer = call(&t, &link);
        assert!(held(&answer), "the stream stays held");
        assert!(answer.response.body().is_empty());
        link = next_link(&answer).0;
        assert_eq!(live(NOW_MS + n * 30_000 + 29_000), 1, "after call {n}");
    }
    // The stream closes: Fanout calls no more, and the presence lapses within its lifetime.
    let closed = NOW_MS + 4 * 30_000;
    let ttl_ms = u64::from(t.config.presence_ttl_secs) * 1000;
    assert_eq!(live(closed + ttl_ms + 30_000), 0);
}

/// The id of the key `link` (a next link's path) is signed with.
fn link_key_id(link: &str) -> char {
    use base64::Engine;
    let token = &link[ALIVE_PREFIX.len()..];
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("base64");
    let text = String::from_utf8(text).expect("text");
    let (_, signature) = text.rsplit_once('|').expect("signed");
    signature.chars().next().expect("an id")
}

#[test]
fn a_rotated_session_key_ends_no_held_stream_and_no_leave() {
    let mut t = services();
    let shop = SiteId::parse("shop").expect("site");
    let opened = open(&t, "siteId=shop");
    let session = session_in(opened.response.body());
    let (mut link, _) = next_link(&opened);
    assert_eq!(link_key_id(&link), 'p', "no slot set: the derived key");
    // The first slot is set and named; then the other, and it is named.
    let fresh = |t: &TestServices, link: &str, at: u64| {
        t.set_time(NOW_MS + at);
        let answer = call(t, link);
        assert!(held(&answer), "held after the rotation at {at}");
        next_link(&answer).0
    };
    t.secrets.insert("session_key_a".into(), b"first".to_vec());
    link = fresh(&t, &link, 30_000);
    assert_eq!(link_key_id(&link), 'a');
    t.secrets.insert("session_key_b".into(), b"second".to_vec());
    t.config.session_key = crate::platform::secrets::KeySlot::B;
    link = fresh(&t, &link, 60_000);
    assert_eq!(link_key_id(&link), 'b');
    let live = crate::count::tally::count(&t.kv, &t.config, &shop, NOW_MS + 89_000);
    assert_eq!(live.expect("count"), 1);
    // The browser's session from before both rotations still ends its presence.
    let body = json!({ "session": session }).to_string();
    let left = handle(&request("POST", LEAVE_PATH, false, &body), &t.services()).expect("leave");
    assert_eq!(left.response.status(), 204);
    // Once a slot is rewritten, a link signed under its old value is refused (here slot b,
    // after a is named again).
    let mut stale = open(&t, "siteId=shop");
    t.config.session_key = crate::platform::secrets::KeySlot::A;
    t.secrets.insert("session_key_b".into(), b"third".to_vec());
    let stale_link = next_link(&stale).0;
    assert_eq!(link_key_id(&stale_link), 'b');
    stale = call(&t, &stale_link);
    assert!(!held(&stale), "two rotations later the old key is gone");
}

#[test]
fn a_leave_removes_the_presence_and_ends_the_stream_for_good() {
    let t = services();
    let shop = SiteId::parse("shop").expect("site");
    let opened = open(&t, "siteId=shop");
    let session = session_in(opened.response.body());
    let (mut link, _) = next_link(&opened);
    // Fanout's calls renew the presence into windows the browser's session does not name.
    for n in 1..=3 {
        t.set_time(NOW_MS + n * 30_000);
        link = next_link(&call(&t, &link)).0;
    }
    let body = json!({ "session": session }).to_string();
    let left = handle(&request("POST", LEAVE_PATH, false, &body), &t.services()).expect("leave");
    assert_eq!(left.response.status(), 204);
    assert!(left.broadcast.is_some());
    let now = NOW_MS + 90_000;
    assert_eq!(
        crate::count::tally::count(&t.kv, &t.config, &shop, now).expect("count"),
        0,
        "every window due is gone"
    );
    assert_eq!(
        crate::count::tally::count(&t.kv, &t.config, &shop, now + 30_000).expect("count"),
        0
    );
    // Fanout is told to end the stream, wherever it holds it.
    let stream = Session::verify(&session, &session_keys(&t.services()).expect("key"))
        .expect("session")
        .stream;
    let closes: Vec<_> = t
        .publisher
        .published
        .borrow()
        .iter()
        .filter(|i| i.close_streams)
        .map(|i| i.channel.clone())
        .collect();
    assert_eq!(closes, vec![format!("stream:shop:{stream}")]);
    let written = t.kv.len();
    // Fanout's next call (the stream still held by a page that sent its beacon and stayed)
    // ends the stream: a 200 with no instruction, and no presence written.
    t.set_time(NOW_MS + 120_000);
    let answer = call(&t, &link);
    assert_eq!(answer.response.status(), 200);
    assert!(!held(&answer));
    assert!(answer.response.headers().get(grip::LINK_HEADER).is_none());
    assert_eq!(t.kv.len(), written, "nothing written");
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l.contains("stream-ended site=shop reason=left")));
}

#[test]
fn heartbeats_are_retired_with_a_clear_410() {
    let t = services();
    let opened = open(&t, "siteId=shop");
    let body = json!({ "session": session_in(opened.response.body()) }).to_string();
    // Twenty seconds on, a heartbeat would have written a third window: it writes nothing.
    t.set_time(NOW_MS + 20_000);
    for method in ["POST", "GET"] {
        let err = handle(
            &request(method, HEARTBEAT_PATH, false, &body),
            &t.services(),
        )
        .expect_err("gone");
        assert_eq!((err.status(), err.code()), (410, "gone"));
    }
    assert_eq!(t.kv.len(), 2, "a heartbeat renews nothing");
}

#[test]
fn a_link_that_does_not_verify_ends_its_stream_without_writing() {
    let t = services();
    let opened = open(&t, "siteId=shop");
    let (link, _) = next_link(&opened);
    let token = &link[ALIVE_PREFIX.len()..];
    let mut flipped = token.to_string();
    let last = if token.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(token.len() - 1.., last);
    t.set_time(NOW_MS + 20_000);
    for bad in ["", "x", "!!", flipped.as_str()] {
        let answer = call(&t, &format!("{ALIVE_PREFIX}{bad}"));
        assert_eq!(answer.response.status(), 200, "{bad}");
        assert!(!held(&answer), "{bad}");
    }
    assert_eq!(t.kv.len(), 2, "nothing renewed");
    assert!(t
        .log
        .lines()
        .iter()
        .any(|l| l.contains("stream-ended site=- reason=invalid-link")));
    // A link made under another key (a rotated secret) ends its stream the same way.
    let mut rotated = services();
    rotated.secrets.clear();
    rotated.secrets.insert(
        crate::platform::fastly_toml::PUBLISH_TOKEN_SECRET.into(),
        b"another".to_vec(),
    );
    let answer = call(&rotated, &link);
    assert!(!held(&answer));
}

#[test]
fn a_held_stream_keeps_its_ticket_counted_or_not() {
    let t = services();
    let shop = SiteId::parse("shop").expect("site");
    let client = ClientKey::parse(&"ab".repeat(16)).expect("key");
    let ttl = limits::socket_ticket_ttl_ms(&t.config);
    let take = || limits::take_socket(&t.cache, &t.config.limits, &shop, &client, ttl);
    assert_eq!(take(), SocketAdmission::Ticket(0));
    let mut req = request("GET", "/sse?siteId=shop", true, "");
    for (name, value) in [
        (UNCOUNTED_HEADER, "1"),
        (CLIENT_HEADER, client.as_str()),
        (TICKET_HEADER, "0"),
    ] {
        req.headers_mut()
            .insert(name, value.parse().expect("header"));
    }
    let opened = handle(&req, &t.services()).expect("open");
    let (mut link, _) = next_link(&opened);
    // Held for three ticket lifetimes, never sending anything itself:
    for n in 1..=6 {
        t.set_time(NOW_MS + n * ttl / 2);
        link = next_link(&call(&t, &link)).0;
    }
    // its ticket is still taken, so the client's next connection gets the next one.
    assert_eq!(take(), SocketAdmission::Ticket(1));
    assert_eq!(t.kv.len(), 0, "and it wrote no presence");
}

#[test]
fn a_bad_session_or_body_is_a_clear_400() {
    let t = services();
    for (body, code) in [
        ("", "bad_request"),
        ("{}", "bad_request"),
        (r#"{"session":"x"}"#, "invalid_session"),
        (
            r#"{"session":"shop|zz|1|-|0|-|-|00000000000000ff"}"#,
            "invalid_session",
        ),
        (
            r#"{"session":"shop|0123456789abcdef0123456789abcdef|1|/x|0|-|-|00000000000000ff"}"#,
            "invalid_session",
        ),
    ] {
        let err = handle(&request("POST", LEAVE_PATH, false, body), &t.services()).expect_err(body);
        assert_eq!((err.status(), err.code()), (400, code), "{body}");
    }
    let big = "x".repeat(MAX_BODY + 1);
    let err = handle(&request("POST", LEAVE_PATH, false, &big), &t.services()).expect_err("big");
    assert_eq!(err.status(), 413);
    let err = handle(&request("GET", LEAVE_PATH, false, ""), &t.services()).expect_err("get");
    assert_eq!(err.status(), 405);
    assert_eq!(t.kv.len(), 0);
}

#[test]
fn a_session_the_service_did_not_sign_is_refused() {
    let t = services();
    let opened = open(&t, "siteId=shop");
    let genuine = session_in(opened.response.body());
    let (payload, tag) = genuine.rsplit_once('|').expect("signed");
    let other_id = payload.replacen(&payload[5..37], &"0".repeat(32), 1);
    let flipped: String = tag.chars().rev().collect();
    for forged in [
        payload.to_string(),
        format!("{other_id}|{tag}"),
        format!("{payload}|{flipped}"),
        format!("{payload}|{}", "0".repeat(32)),
    ] {
        let body = json!({ "session": forged }).to_string();
        let err =
            handle(&request("POST", LEAVE_PATH, false, &body), &t.services()).expect_err(&forged);
        assert_eq!(err.code(), "invalid_session", "{forged}");
    }
    assert_eq!(t.kv.len(), 2, "the genuine presence only");
    // Without a secret to sign with, no stream opens.
    let mut bare = services();
    bare.secrets.clear();
    let err = handle(
        &request("GET", "/sse?siteId=shop", true, ""),
        &bare.services(),
    )
    .expect_err("no key");
    assert_eq!(err.status(), 503);
}

#[test]
fn no_log_line_shows_a_next_links_session() {
    let t = services();
    let opened = open(&t, "siteId=shop");
    let (link, _) = next_link(&opened);
    let token = &link[ALIVE_PREFIX.len()..];
    // Fanout's call as `main` serves it, and one refused (unsigned): the request line and the
    // error line name the path without the session.
    for signed in [true, false] {
        let req = request("GET", &link, signed, "");
        crate::surfaces::serve::request(&t.services(), "GET", &link, &req, &mut |_| {});
    }
    let lines = t.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("path=/sse/alive/… status=200")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("path=/sse/alive/… status=403")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(token)), "{lines:?}");
}
