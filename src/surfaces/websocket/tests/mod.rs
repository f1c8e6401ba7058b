//! The WebSocket endpoint's tests, by what happens to a connection: each drives [`handle`] with
//! signed WebSocket-over-HTTP requests as Pushpin sends them, over the fake host services.
//! (They mint Grip-Sig tokens with the testkit: native only.)

mod close;
mod messages;
mod open;

use http::Request;
use liveuser_testkit::jwt::hs256_token;

use super::connection::*;
use super::handle;
use crate::count::{handover, page, presence, snapshot, totals};
use crate::platform::testing::{TestServices, TEST_GRIP_KEY};
use crate::platform::Services;
use crate::surfaces::handoff::UNCOUNTED_HEADER;
use crate::surfaces::Handled;
use crate::wire::error::HttpError;
use crate::wire::grip;
use crate::wire::site::SiteId;
use crate::wire::websocket_events::{self, Event};

pub(super) const NOW_MS: u64 = 1_800_000_000_000;

pub(super) fn services() -> TestServices {
    let t = TestServices::new();
    t.set_time(NOW_MS);
    t
}

/// A WebSocket-over-HTTP request as Pushpin sends it, signed with the test key.
pub(super) fn call(query: &str, meta: &[(&str, &str)], body: &[u8]) -> Request<Vec<u8>> {
    let token = hs256_token(TEST_GRIP_KEY, "pushpin", NOW_MS / 1000 + 3600);
    let mut builder = Request::builder()
        .method("POST")
        .uri(format!("/ws{query}"))
        .header("Content-Type", websocket_events::CONTENT_TYPE)
        .header("Connection-Id", "conn-1")
        .header("Grip-Sig", token);
    for (name, value) in meta {
        builder = builder.header(format!("Meta-{name}"), *value);
    }
    builder.body(body.to_vec()).expect("request")
}

pub(super) fn events(handled: &Handled) -> Vec<Event> {
    websocket_events::parse(handled.response.body()).expect("reply parses")
}

pub(super) fn set_meta(handled: &Handled, name: &str) -> Option<String> {
    handled
        .response
        .headers()
        .get(format!("Set-Meta-{name}"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Opens a connection and returns the meta Fanout would send back on later requests.
pub(super) fn open(t: &TestServices, site: &str) -> Vec<(&'static str, String)> {
    let handled = handle(
        &call(&format!("?siteId={site}"), &[], b"OPEN\r\n"),
        &t.services(),
    )
    .expect("open");
    vec![
        ("Site", set_meta(&handled, "Site").expect("site meta")),
        (
            "Presence-Id",
            set_meta(&handled, "Presence-Id").expect("id meta"),
        ),
        (
            "Presence-Windows",
            set_meta(&handled, "Presence-Windows").expect("exp meta"),
        ),
    ]
}

pub(super) fn with_meta<'a>(meta: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    meta.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// Opens a connection with `query`, then sends its join: the join's reply.
pub(super) fn open_and_join(t: &TestServices, services: &Services, query: &str) -> Handled {
    let opened = handle(&call(query, &[], b"OPEN\r\n"), services).expect("open");
    let join = websocket_events::encode(&[Event::Text(r#"{"type":"join"}"#.into())]);
    let _ = t;
    handle(&call("", &with_meta(&meta_of(&opened)), &join), services).expect("join")
}

pub(super) fn live(t: &TestServices, site: &str, at_ms: u64) -> u64 {
    let site = SiteId::parse(site).expect("site");
    crate::count::tally::count(&t.kv, &t.config, &site, at_ms).expect("count")
}

pub(super) fn meta_of(handled: &Handled) -> Vec<(&'static str, String)> {
    [
        META_SITE,
        META_PRESENCE_ID,
        META_PRESENCE_WINDOWS,
        META_TOTALS,
        META_VISITED,
        META_SHARED,
        META_TOOK_OVER,
        META_JOINED,
        META_RELAYED_VISITS,
        META_PAGE,
        META_PAGE_MOVES,
        META_PAGE_MOVED,
        META_PAGE_PENDING,
    ]
    .into_iter()
    .filter_map(|n| set_meta(handled, n).map(|v| (n, v)))
    .collect()
}
