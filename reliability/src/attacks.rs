//! Attacks on the local stack (Pushpin, Viceroy, the shipped wasm, real clients), each with what
//! the attacker gets and the bound it must stay under: a reader kept counted by replaying what
//! a stream's browser was given after the stream closed; connections held by one address
//! (crawler sockets and SSE streams among them); KV writes a page-moving connection causes; and
//! what a floored site tells below its floor.

use std::time::{Duration, Instant};

use base64::Engine;
use liveuser_testkit::client::{Client, Received};
use liveuser_testkit::sse::EventStream;
use liveuser_testkit::stack::{Stack, StackOptions};
use serde_json::Value;

use crate::scenarios::online;

/// Heartbeats every 2 s: a presence lives 3 s, so a bound of a presence and an interval is
/// seconds, not a minute.
const HEARTBEAT_SECS: u64 = 2;
/// Connections one address may hold on one site here.
const SHARE: u64 = 5;
/// The floor of the floored site.
const FLOOR: u64 = 3;
/// A browser's user agent: with automated clients left uncounted (as in production), the
/// attackers pass for readers.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const AS_BROWSER: &[(&str, &str)] = &[("User-Agent", BROWSER)];

/// What each attack got.
#[derive(Debug, Clone, Default)]
pub struct Attacks {
    /// A stream's reader left its stream and replayed what it was given (its session, as a
    /// heartbeat and as a next link) every second: readers still counted after the bound, the
    /// bound, and the statuses the replays got (and that it was counted before it left).
    pub replay_counted_before: Option<u64>,
    pub replay_counted_after: Option<u64>,
    pub replay_bound: Duration,
    pub replay_statuses: Vec<u16>,
    /// One address tried sockets, crawler sockets and SSE streams on one site: how many of
    /// each it tried, how many it held together, and its share.
    pub held_tried: u64,
    pub held: u64,
    pub share: u64,
    /// One socket asked for `moves` page moves over `move_secs`: the KV writes and deletes its
    /// requests made, and the bound (one move per 2 s, each at most two writes and two deletes,
    /// plus its heartbeats' writes).
    pub moves: u64,
    pub move_secs: u64,
    pub move_kv_ops: u64,
    pub move_bound: u64,
    /// A site with a floor of 3 and 2 readers on two pages: every count, page count and total
    /// its readers and the API were shown, and how many of them told a number below the floor
    /// (exact below it, or a total not a multiple of it).
    pub floor: u64,
    pub floor_values_seen: u64,
    pub floor_revealed: u64,
}

impl Attacks {
    pub fn holds(&self) -> bool {
        self.replay_counted_before == Some(1)
            && self.replay_counted_after == Some(0)
            && self.held <= self.share
            && self.move_kv_ops <= self.move_bound
            && self.floor_values_seen > 0
            && self.floor_revealed == 0
    }
}

fn stack() -> Stack {
    Stack::start_with(
        StackOptions::default()
            .with_config("heartbeat_interval_secs", &HEARTBEAT_SECS.to_string())
            .with_config("max_sockets_per_client", &SHARE.to_string())
            .with_config("count_automated", "off")
            .with_site("floored", &format!(r#"{{"minCount": {FLOOR}}}"#)),
    )
}

/// The session a stream's first event names.
fn session_of(stream: &mut EventStream) -> Option<String> {
    let first = stream.next_event(Duration::from_secs(15))?;
    let v: Value = serde_json::from_str(&first.data).ok()?;
    v["session"].as_str().map(str::to_string)
}

/// Runs every attack on one fresh stack; `move_secs`: how long the page-moving socket moves.
pub fn attacks(move_secs: u64) -> Attacks {
    let stack = stack();
    let mut a = Attacks {
        share: SHARE,
        floor: FLOOR,
        move_secs,
        ..Attacks::default()
    };
    replay(&stack, &mut a);
    held(&stack, &mut a);
    page_moves(&stack, &mut a);
    floored(&stack, &mut a);
    a
}

/// Opens a stream, keeps what it was given, closes it, and replays it every second.
fn replay(stack: &Stack, a: &mut Attacks) {
    let site = "replayed";
    let Ok(mut stream) =
        EventStream::open(stack.app_port, &format!("/sse?siteId={site}"), AS_BROWSER)
    else {
        return;
    };
    let Some(session) = session_of(&mut stream) else {
        return;
    };
    let counted = Instant::now() + Duration::from_secs(15);
    while online(stack, site) != Some(1) && Instant::now() < counted {
        std::thread::sleep(Duration::from_millis(200));
    }
    a.replay_counted_before = online(stack, site);
    drop(stream);
    // A presence's lifetime and an interval, and a sweep's count settling after it.
    let presence = HEARTBEAT_SECS * 3 / 2;
    a.replay_bound = Duration::from_secs(presence + 2 * HEARTBEAT_SECS + 2);
    let body = serde_json::json!({ "session": session }).to_string();
    let link = format!(
        "/sse/alive/{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&session)
    );
    let started = Instant::now();
    while started.elapsed() < a.replay_bound {
        for (method, path, body) in [
            ("POST", "/sse/heartbeat", body.as_bytes()),
            ("GET", link.as_str(), &b""[..]),
        ] {
            let status = stack.http(method, path, &[], body).status;
            if !a.replay_statuses.contains(&status) {
                a.replay_statuses.push(status);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Another socket on the site claims the sweeps that would count the lapsed presence.
    let url = stack.ws_url(&format!("siteId={site}"));
    let witness = Client::try_connect_with(&url, AS_BROWSER, None).ok();
    let settled = Instant::now() + Duration::from_secs(3 * HEARTBEAT_SECS);
    while Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(500));
    }
    a.replay_counted_after =
        online(stack, site).map(|n| n.saturating_sub(u64::from(witness.is_some())));
}

/// One address tries sockets, crawler sockets and SSE streams on one site, and holds them.
fn held(stack: &Stack, a: &mut Attacks) {
    let site = "held-share";
    let url = stack.ws_url(&format!("siteId={site}"));
    let crawler = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let mut sockets = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..SHARE * 2 {
        a.held_tried += 3;
        if let Ok(c) = Client::try_connect_with(&url, AS_BROWSER, None) {
            sockets.push(c);
        }
        if let Ok(c) = Client::try_connect_with(&url, &[("User-Agent", crawler)], None) {
            sockets.push(c);
        }
        if let Ok(s) = EventStream::open(stack.app_port, &format!("/sse?siteId={site}"), AS_BROWSER)
        {
            streams.push(s);
        }
    }
    a.held = (sockets.len() + streams.len()) as u64;
}

/// One socket on a page asks to move every 100 ms for `move_secs`.
fn page_moves(stack: &Stack, a: &mut Attacks) {
    let site = "moving";
    let url = stack.ws_url(&format!("siteId={site}&page=/start"));
    let Ok(mut client) = Client::try_connect_with(&url, AS_BROWSER, None) else {
        return;
    };
    client.send_text(r#"{"type":"join"}"#);
    // The OPEN's own writes are logged once its reply is sent: not the moves'.
    std::thread::sleep(Duration::from_secs(1));
    let before = kv_ops(stack, site);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(a.move_secs) {
        client.send_text(&format!(r#"{{"type":"page","page":"/p{}"}}"#, a.moves));
        a.moves += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its last move waits its turn, and is made by the next request.
    std::thread::sleep(Duration::from_secs(HEARTBEAT_SECS + 1));
    drop(client);
    std::thread::sleep(Duration::from_secs(1));
    a.move_kv_ops = kv_ops(stack, site).saturating_sub(before);
    // One move every 2 s, each at most two writes and two deletes; a heartbeat (Fanout's
    // keep-alive calls included) writes a key a window; the close deletes two.
    let moves = a.move_secs / 2 + 2;
    let windows = (a.move_secs + HEARTBEAT_SECS + 2) / HEARTBEAT_SECS + 1;
    a.move_bound = moves * 4 + windows + 2;
}

/// KV writes and deletes the requests of `site`'s connections made so far (broadcasts aside:
/// they are the site's, not a connection's).
fn kv_ops(stack: &Stack, site: &str) -> u64 {
    stack
        .app_log_lines(&format!("site={site} events="))
        .iter()
        .filter(|l| l.starts_with("liveuser request"))
        .map(|l| field(l, "kv_insert") + field(l, "kv_delete"))
        .sum()
}

fn field(line: &str, name: &str) -> u64 {
    line.split(' ')
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Two readers of a floored site, on two pages, with totals: everything shown is collected.
fn floored(stack: &Stack, a: &mut Attacks) {
    let site = "floored";
    let mut seen: Vec<(String, u64, bool)> = Vec::new();
    let mut readers: Vec<Client> = ["/a", "/b"]
        .iter()
        .filter_map(|page| {
            let url = stack.ws_url(&format!("siteId={site}&enableTotalCount=true&page={page}"));
            let mut c = Client::try_connect_with(&url, AS_BROWSER, None).ok()?;
            c.send_text(r#"{"type":"join"}"#);
            Some(c)
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(4 * HEARTBEAT_SECS);
    while Instant::now() < until {
        for r in &mut readers {
            while let Received::Text(text) = r.recv(Duration::from_millis(100)) {
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                if v["type"] == "update" {
                    collect(&mut seen, &v, "count", "belowMin");
                    collect(&mut seen, &v, "pageCount", "pageBelowMin");
                    collect(&mut seen, &v, "totalCount", "");
                }
            }
        }
    }
    for path in ["/api/online/floored?page=/a", "/api/total/floored"] {
        let resp = stack.http("GET", path, &[], b"");
        let v = resp.json();
        collect(&mut seen, &v, "online", "belowMin");
        collect(&mut seen, &v, "pageOnline", "pageBelowMin");
        collect(&mut seen, &v, "totalCount", "");
    }
    a.floor_values_seen = seen.len() as u64;
    a.floor_revealed = seen
        .iter()
        .filter(|(what, n, _)| {
            if what == "totalCount" {
                n % FLOOR != 0
            } else {
                *n < FLOOR
            }
        })
        .count() as u64;
}

/// Notes `v[name]` (a number) as shown, flagged if `v[flag]` is true.
fn collect(seen: &mut Vec<(String, u64, bool)>, v: &Value, name: &str, flag: &str) {
    if let Some(n) = v[name].as_u64() {
        seen.push((name.to_string(), n, v[flag] == true));
    }
}
