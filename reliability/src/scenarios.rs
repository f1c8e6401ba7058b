//! Failure and abuse scenarios on the local stack (Pushpin, Viceroy, the shipped wasm, real
//! WebSocket clients): many first visits at once, Pushpin killed, sockets held for minutes,
//! the publish target down, and a flood from one address.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use liveuser_bench::clients::{self, shows_as, Client};
use liveuser_testkit::http::try_http_request_as;
use liveuser_testkit::proxy::Proxy;
use liveuser_testkit::stack::{Stack, StackOptions};

/// Handshakes in flight at once (as the benchmarks: local Pushpin loses sessions when
/// hundreds land in the same few milliseconds).
const PARALLEL: usize = 32;

/// Where this module's own reads of the API come from, so they never count against the
/// address a scenario floods from.
const MONITOR: Option<Ipv4Addr> = Some(Ipv4Addr::new(127, 0, 0, 250));

fn get(stack: &Stack, path: &str) -> Option<serde_json::Value> {
    try_http_request_as(MONITOR, stack.app_port, "GET", path, &[], b"")
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.json())
}

pub(crate) fn online(stack: &Stack, site: &str) -> Option<u64> {
    get(stack, &format!("/api/online/{site}"))?["online"].as_u64()
}

fn total(stack: &Stack, site: &str) -> Option<u64> {
    get(stack, &format!("/api/total/{site}"))?["totalCount"].as_u64()
}

/// Polls `f` once a second until it is true or `limit` has passed; how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// A fresh stack heartbeating every `heartbeat_secs` (with `options` besides), and `sockets`
/// readers of `site` on it, connected through Pushpin as production browsers reach Fanout.
struct Readers {
    stack: Stack,
    rt: tokio::runtime::Runtime,
    url: String,
    beat: Option<Duration>,
    clients: Vec<Client>,
}

fn readers(options: StackOptions, site: &str, sockets: u64, heartbeat_secs: u64) -> Readers {
    readers_via(options, site, sockets, heartbeat_secs, |_| {})
}

/// [`readers`], with `ready` run once the stack is up and before any reader connects.
fn readers_via(
    options: StackOptions,
    site: &str,
    sockets: u64,
    heartbeat_secs: u64,
    ready: impl FnOnce(&Stack),
) -> Readers {
    let options = options.with_config("heartbeat_interval_secs", &heartbeat_secs.to_string());
    let stack = Stack::start_with(options);
    ready(&stack);
    let rt = runtime();
    let url = format!("{}/ws?siteId={site}", stack.fanout_ws_origin());
    let beat = Some(Duration::from_secs(heartbeat_secs));
    let clients = rt
        .block_on(clients::connect_many(
            &url,
            site,
            sockets as usize,
            PARALLEL,
            beat,
        ))
        .unwrap_or_default();
    Readers {
        stack,
        rt,
        url,
        beat,
        clients,
    }
}

/// How many of `clients` show `count` and are still open. A page is judged on what the widget
/// shows: above 1,000 pages are told only what they would show differently ("2K"), while the
/// API keeps the exact count.
fn told(clients: &[Client], count: u64) -> usize {
    clients
        .iter()
        .filter(|c| {
            let log = c.log();
            !log.closed && log.last_count().is_some_and(|n| shows_as(n, count))
        })
        .count()
}

// ---- Many first visits at once ----

#[derive(Debug, Clone)]
pub struct Visits {
    /// First visits made as WebSocket-over-HTTP OPENs straight to the app, signed as
    /// Pushpin signs them, `in_flight` at a time.
    pub signed: u64,
    pub in_flight: usize,
    pub signed_total: Option<u64>,
    pub signed_exact_after: Option<Duration>,
    /// First visits as real WebSockets through Pushpin.
    pub sockets: u64,
    pub sockets_connected: u64,
    pub sockets_total: Option<u64>,
    pub failed_visits: usize,
}

impl Visits {
    pub fn holds(&self) -> bool {
        self.signed_total == Some(self.signed)
            && self.sockets_total == Some(self.sockets)
            && self.sockets_connected == self.sockets
            && self.failed_visits == 0
    }
}

pub fn visits(signed: u64, sockets: u64) -> Visits {
    let stack = Arc::new(Stack::start());
    let in_flight = 256.min(signed as usize).max(1);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (stack, next) = (Arc::clone(&stack), Arc::clone(&next));
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= signed {
                    break;
                }
                let query = "siteId=first-visits&enableTotalCount=true";
                let resp = stack.signed_events(query, &format!("v{i}"), &[], b"OPEN\r\n");
                assert_eq!(resp.status, 200, "{}", resp.text());
            })
        })
        .collect();
    let start = Instant::now();
    for w in workers {
        let _ = w.join();
    }
    let signed_exact_after = within(Duration::from_secs(60), || {
        total(&stack, "first-visits") == Some(signed)
    })
    .map(|_| start.elapsed());
    let signed_total = total(&stack, "first-visits");

    let rt = runtime();
    let url = format!(
        "{}/ws?siteId=socket-visits&enableTotalCount=true",
        stack.fanout_ws_origin()
    );
    let held = rt.block_on(async {
        let results: Vec<Result<Client, String>> = {
            use futures_util::StreamExt;
            futures_util::stream::iter(0..sockets)
                .map(|_| clients::connect(&url, "socket-visits", Some(Duration::from_secs(30))))
                .buffer_unordered(PARALLEL)
                .collect()
                .await
        };
        results
            .into_iter()
            .filter_map(Result::ok)
            .collect::<Vec<Client>>()
    });
    let sockets_connected = held.len() as u64;
    within(Duration::from_secs(60), || {
        total(&stack, "socket-visits") == Some(sockets)
    });
    let sockets_total = total(&stack, "socket-visits");
    rt.block_on(clients::close_many(held, PARALLEL));
    Visits {
        signed,
        in_flight,
        signed_total,
        signed_exact_after,
        sockets,
        sockets_connected,
        sockets_total,
        failed_visits: stack.app_log_lines("liveuser visit-failed").len(),
    }
}

// ---- Pushpin killed ----

/// The longest a connection that vanished without an event may still count: its presence
/// reaches the presence TTL (1.5 heartbeat intervals) past its last heartbeat, to the end of
/// the heartbeat-interval window that reaches, and the API may answer from a POP cache for
/// a few seconds more.
pub fn linger_bound(heartbeat_secs: u64) -> Duration {
    Duration::from_millis(2_500 * heartbeat_secs) + Duration::from_secs(5)
}

#[derive(Debug, Clone)]
pub struct PushpinKilled {
    pub sockets: u64,
    pub heartbeat_secs: u64,
    /// Counted before the kill.
    pub before: Option<u64>,
    /// Counted [`linger_bound`] after the kill, besides one new socket.
    pub phantoms: Option<u64>,
    /// How long after the kill the count reached zero.
    pub gone_after: Option<Duration>,
    /// What a new socket opened after the restart was told.
    pub new_socket_told: Option<u64>,
}

impl PushpinKilled {
    pub fn holds(&self) -> bool {
        self.before == Some(self.sockets)
            && self.phantoms == Some(0)
            && self.new_socket_told == Some(1)
    }
}

pub fn pushpin_killed(sockets: u64, heartbeat_secs: u64) -> PushpinKilled {
    let site = "killed";
    let Readers {
        mut stack,
        rt,
        url,
        beat,
        clients: held,
    } = readers(StackOptions::default(), site, sockets, heartbeat_secs);
    within(Duration::from_secs(60), || {
        online(&stack, site) == Some(sockets)
    });
    let before = online(&stack, site);
    let killed_at = Instant::now();
    stack.kill_and_restart_pushpin();
    let mut gone_after = None;
    while killed_at.elapsed() < linger_bound(heartbeat_secs) {
        if gone_after.is_none() && online(&stack, site) == Some(0) {
            gone_after = Some(killed_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(held);
    let fresh = rt.block_on(clients::connect(&url, site, beat)).ok();
    let new_socket_told = fresh.as_ref().and_then(|c| {
        within(Duration::from_secs(10), || c.log().last_count().is_some());
        c.log().last_count()
    });
    let phantoms = online(&stack, site).map(|n| n.saturating_sub(u64::from(fresh.is_some())));
    PushpinKilled {
        sockets,
        heartbeat_secs,
        before,
        phantoms,
        gone_after,
        new_socket_told,
    }
}

// ---- Sockets held for minutes ----

#[derive(Debug, Clone)]
pub struct Held {
    pub sockets: u64,
    pub minutes: f64,
    pub samples: u64,
    /// Samples where every socket was open and showed the count, and the API said it exactly.
    pub exact_samples: u64,
    /// Resident memory per process (KiB): at the first sample and the last.
    pub memory: Vec<(String, u64, u64)>,
}

impl Held {
    pub fn holds(&self) -> bool {
        self.samples > 0 && self.exact_samples == self.samples && self.memory_flat()
    }

    /// Every process was there at the end, and none grew by more than a tenth (and 4 MiB)
    /// from the first sample to the last.
    pub fn memory_flat(&self) -> bool {
        !self.memory.is_empty()
            && self
                .memory
                .iter()
                .all(|(_, first, last)| *last > 0 && *last <= first + first / 10 + 4096)
    }
}

pub fn held(sockets: u64, duration: Duration, heartbeat_secs: u64) -> Held {
    let site = "held";
    let Readers {
        stack, rt, clients, ..
    } = readers(StackOptions::default(), site, sockets, heartbeat_secs);
    within(Duration::from_secs(60), || {
        told(&clients, sockets) == sockets as usize
    });
    let start = Instant::now();
    let (mut samples, mut exact_samples) = (0, 0);
    let first = stack.memory_kib();
    let mut last = first.clone();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(5));
        samples += 1;
        let exact =
            told(&clients, sockets) == sockets as usize && online(&stack, site) == Some(sockets);
        exact_samples += u64::from(exact);
        last = stack.memory_kib();
    }
    rt.block_on(clients::close_many(clients, PARALLEL));
    Held {
        sockets,
        minutes: duration.as_secs_f64() / 60.0,
        samples,
        exact_samples,
        memory: first
            .iter()
            .map(|(name, kib)| {
                let end = last.iter().find(|(n, _)| n == name).map_or(0, |(_, k)| *k);
                (name.clone(), *kib, end)
            })
            .collect(),
    }
}

// ---- The publish target down ----

#[derive(Debug, Clone)]
pub struct PublishDown {
    pub sockets: u64,
    pub outage: Duration,
    /// Sockets that stayed the whole time, and how many of them were dropped.
    pub stayers: u64,
    pub dropped: u64,
    pub left_during: u64,
    pub joined_during: u64,
    pub failed_publishes: usize,
    /// After the target came back: how long until every socket was told the right count.
    pub exact_after: Option<Duration>,
    /// The bound: a sweep needs a heartbeat to run it (one heartbeat interval), runs once a
    /// sweep interval, and settles before it counts.
    pub bound: Duration,
    /// What the broadcasts published after the target came back said, in order.
    pub published_after: Vec<u64>,
    pub expected: u64,
}

impl PublishDown {
    pub fn holds(&self) -> bool {
        self.dropped == 0
            && self.failed_publishes > 0
            && self.exact_after.is_some_and(|d| d <= self.bound)
            && self.published_after.first() == Some(&self.expected)
    }
}

pub fn publish_down(sockets: u64, outage: Duration, heartbeat_secs: u64) -> PublishDown {
    let proxy = Proxy::start();
    let site = "outage";
    let options = StackOptions::default().with_publisher(&proxy.url());
    // The proxy learns where to forward once the stack's ports are known; nothing publishes
    // before the readers connect.
    let Readers {
        stack,
        rt,
        url,
        beat,
        clients: mut stayers,
    } = readers_via(options, site, sockets, heartbeat_secs, |stack| {
        proxy.set_target(stack.publish_port)
    });
    within(Duration::from_secs(60), || {
        told(&stayers, sockets) == sockets as usize
    });

    proxy.set_up(false);
    let down_at = Instant::now();
    let leaving: Vec<Client> = stayers.drain(..(sockets / 4) as usize).collect();
    let left_during = leaving.len() as u64;
    rt.block_on(clients::close_many(leaving, PARALLEL));
    let joined = rt
        .block_on(clients::connect_many(
            &url,
            site,
            (sockets / 10) as usize,
            PARALLEL,
            beat,
        ))
        .unwrap_or_default();
    let joined_during = joined.len() as u64;
    std::thread::sleep(outage.saturating_sub(down_at.elapsed()));
    proxy.set_up(true);
    let back_ms = epoch_ms();

    let expected = stayers.len() as u64 + joined_during;
    let mut everyone = stayers;
    everyone.extend(joined);
    let bound = Duration::from_secs(heartbeat_secs + (heartbeat_secs / 3).max(1) + 2);
    let exact_after = within(Duration::from_secs(90), || {
        told(&everyone, expected) == everyone.len()
    });
    let published_after = stack
        .broadcasts(site)
        .into_iter()
        .filter(|b| b.published() && b.slot >= back_ms)
        .filter_map(|b| b.count)
        .collect();
    let dropped = everyone.iter().filter(|c| c.log().closed).count() as u64;
    let failed_publishes = stack.app_log_lines("result=publish-failed").len();
    rt.block_on(clients::close_many(everyone, PARALLEL));
    PublishDown {
        sockets,
        outage,
        stayers: expected - joined_during,
        dropped,
        left_during,
        joined_during,
        failed_publishes,
        exact_after,
        bound,
        published_after,
        expected,
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---- A flood from one address ----

#[derive(Debug, Clone)]
pub struct Flood {
    pub attempts: u64,
    pub socket_limit: u64,
    pub accepted: u64,
    pub refused_429: u64,
    /// Other addresses, sockets each, and how many of theirs were accepted.
    pub others: u64,
    pub others_each: u64,
    pub others_accepted: u64,
    pub online: Option<u64>,
    /// Visits: the limit an hour, what the flooder tried, and the site's total.
    pub visit_limit: u64,
    pub visits_tried: u64,
    pub total: Option<u64>,
    pub expected_total: u64,
    /// API reads that cost the store (each of a site the POP holds nothing for): the limit a
    /// minute, what the flooder tried, what it got, and whether another address was still
    /// served.
    pub read_limit: u64,
    pub reads_tried: u64,
    pub reads_served: u64,
    pub other_reader_served: bool,
    /// Then, its share spent, the same address reads the flooded site's count, which the POP
    /// answers without the store (its one-second copy, or the newest it saw): what it tried,
    /// what it got, and over how many seconds.
    pub cached_tried: u64,
    pub cached_served: u64,
    pub cached_secs: u64,
}

impl Flood {
    pub fn holds(&self) -> bool {
        self.accepted == self.socket_limit
            && self.refused_429 == self.attempts - self.socket_limit
            && self.others_accepted == self.others * self.others_each
            && self.online == Some(self.socket_limit + self.others * self.others_each)
            && self.total == Some(self.expected_total)
            && self.reads_served == self.read_limit
            && self.other_reader_served
            && self.cached_served == self.cached_tried
    }
}

fn address(n: u8) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::new(127, 0, 0, n))
}

/// `n` sockets from `from`, each a single handshake, all at once: those accepted, and how
/// many were refused with 429.
async fn open_from(url: &str, site: &str, n: u64, from: Option<Ipv4Addr>) -> (Vec<Client>, u64) {
    use futures_util::StreamExt;
    let results: Vec<Result<Client, String>> = futures_util::stream::iter(0..n)
        .map(|_| clients::connect_as(url, site, Some(Duration::from_secs(30)), from, 1))
        .buffer_unordered(64)
        .collect()
        .await;
    let refused = results
        .iter()
        .filter(|r| r.as_ref().err().is_some_and(|e| e.contains("429")))
        .count() as u64;
    (
        results.into_iter().filter_map(Result::ok).collect(),
        refused,
    )
}

pub fn flood(attempts: u64, reads: u64) -> Flood {
    let (socket_limit, visit_limit, read_limit) = (20u64, 30u64, 120u64);
    let options = StackOptions::default()
        .with_config("max_sockets_per_client", &socket_limit.to_string())
        .with_config("max_visits_per_client_hour", &visit_limit.to_string())
        .with_config("max_api_reads_per_client_minute", &read_limit.to_string());
    let stack = Stack::start_with(options);
    let rt = runtime();
    let site = "flooded";
    // Through Viceroy, as production browsers reach Compute: the limits apply at the handoff.
    let url = stack.ws_url(&format!("siteId={site}&enableTotalCount=true"));
    let (others, others_each) = (10u64, 3u64);
    let (flooders, refused_429) = rt.block_on(open_from(&url, site, attempts, None));
    let accepted = flooders.len() as u64;
    let mut theirs = Vec::new();
    for n in 0..others {
        let (held, _) = rt.block_on(open_from(&url, site, others_each, address(10 + n as u8)));
        theirs.extend(held);
    }
    let others_accepted = theirs.len() as u64;
    let expected_online = accepted + others_accepted;
    within(Duration::from_secs(30), || {
        online(&stack, site) == Some(expected_online)
    });
    let online_now = online(&stack, site);

    // Visits: the flooder closes its sockets and opens them again, twice: every open is a
    // visit it asks for; only its hourly share counts.
    let mut visits_tried = accepted;
    rt.block_on(clients::close_many(flooders, PARALLEL));
    for _ in 0..2 {
        let mut again = Vec::new();
        // Tickets come back as the closes reach the service.
        within(Duration::from_secs(20), || {
            let (more, _) = rt.block_on(open_from(
                &url,
                site,
                socket_limit - again.len() as u64,
                None,
            ));
            again.extend(more);
            again.len() as u64 == socket_limit
        });
        visits_tried += again.len() as u64;
        rt.block_on(clients::close_many(again, PARALLEL));
    }
    let expected_total = visit_limit.min(visits_tried) + others_accepted;
    within(Duration::from_secs(30), || {
        total(&stack, site) == Some(expected_total)
    });
    std::thread::sleep(Duration::from_secs(2));
    let total_now = total(&stack, site);

    // API reads, all within one minute.
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() % 60)
        .unwrap_or(0);
    if second > 40 {
        std::thread::sleep(Duration::from_secs(61 - second));
    }
    let served = |from: Option<Ipv4Addr>, path: &str| {
        try_http_request_as(from, stack.app_port, "GET", path, &[], b"")
            .is_ok_and(|r| r.status == 200)
    };
    // Each read names a site nobody reads: the POP's cache cannot answer, the store must.
    let reads_served = (0..reads)
        .filter(|n| served(None, &format!("/api/online/unread-{n}")))
        .count() as u64;
    let path = format!("/api/online/{site}");
    let other_reader_served = served(address(9), &path);
    // Its share spent, the address reads what the POP holds: answered all the same (200
    // readers behind one address, or an image proxy fetching a popular badge).
    let cached_tried = 200;
    let started = Instant::now();
    let cached_served = (0..cached_tried).filter(|_| served(None, &path)).count() as u64;
    let cached_secs = started.elapsed().as_secs() + 1;
    rt.block_on(clients::close_many(theirs, PARALLEL));
    Flood {
        attempts,
        socket_limit,
        accepted,
        refused_429,
        others,
        others_each,
        others_accepted,
        online: online_now,
        visit_limit,
        visits_tried,
        total: total_now,
        expected_total,
        read_limit,
        reads_tried: reads,
        reads_served,
        other_reader_served,
        cached_tried,
        cached_served,
        cached_secs,
    }
}
