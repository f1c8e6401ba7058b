//! The standard scenarios, each against a running local stack.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use liveuser_testkit::http::http_request;
use liveuser_testkit::stack::Stack;

use crate::clients::{self, Client};
use crate::stats::Spread;

/// Handshakes (and closes) in flight at once. Debian's Pushpin 1.36 occasionally loses a
/// session when hundreds of handshakes land in the same few milliseconds, and drops CLOSE
/// events when hundreds of closes do (see README).
pub const CONNECT_PARALLELISM: usize = 32;

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Average KV operations and publishes of one kind of request, read from the request log.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpCost {
    pub requests: usize,
    pub kv_reads: f64,
    pub kv_writes: f64,
    pub kv_lists: f64,
    pub max_writes: u64,
}

fn field(line: &str, name: &str) -> u64 {
    liveuser_testkit::log::number(line, name)
}

/// The cost of requests whose log line matches every one of `needles`.
pub fn op_cost(stack: &Stack, needles: &[&str]) -> OpCost {
    let lines: Vec<String> = stack
        .app_log_lines("liveuser request ")
        .into_iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect();
    let n = lines.len().max(1) as f64;
    let sum = |f: &dyn Fn(&str) -> u64| lines.iter().map(|l| f(l)).sum::<u64>() as f64 / n;
    OpCost {
        requests: lines.len(),
        kv_reads: sum(&|l| field(l, "kv_lookup")),
        kv_writes: sum(&|l| field(l, "kv_insert") + field(l, "kv_delete")),
        kv_lists: sum(&|l| field(l, "kv_list")),
        max_writes: lines
            .iter()
            .map(|l| field(l, "kv_insert") + field(l, "kv_delete"))
            .max()
            .unwrap_or(0),
    }
}

/// The slots (epoch ms) of the broadcasts to `site` since `since_ms`.
pub fn broadcast_slots(stack: &Stack, site: &str, since_ms: u64) -> Vec<u64> {
    stack
        .published_slots(site)
        .into_iter()
        .filter(|slot| *slot >= since_ms)
        .collect()
}

/// The most slots in any one wall-clock second.
fn max_per_second(slots: &[u64]) -> usize {
    let mut per_second = std::collections::BTreeMap::new();
    for slot in slots {
        *per_second.entry(slot / 1000).or_insert(0usize) += 1;
    }
    per_second.values().copied().max().unwrap_or(0)
}

/// Where and when a wave's joins happened.
struct JoinPhase<'a> {
    site: &'a str,
    /// Epoch ms at the wave's start (broadcast slots are epoch ms).
    since: u64,
    start: Instant,
    last_change: Instant,
}

/// What the join phase cost, read once the wave settled or gave up.
fn record_joins(result: &mut Wave, stack: &Stack, phase: &JoinPhase, clients: &[Client]) {
    result.settle = settle_of(clients, result.n as u64, phase.last_change);
    result.span = phase.start.elapsed();
    result.delivered = clients.iter().map(|c| c.log().messages).sum();
    let slots = broadcast_slots(stack, phase.site, phase.since);
    result.broadcasts = slots.len();
    result.max_in_a_second = max_per_second(&slots);
    result.slowest_broadcast_ms = slowest_broadcast(stack, phase.site);
}

/// The longest any broadcast to `site` took from its slot's end until its publish returned.
fn slowest_broadcast(stack: &Stack, site: &str) -> u64 {
    stack
        .broadcasts(site)
        .iter()
        .filter(|b| b.published())
        .map(|b| b.late_ms)
        .max()
        .unwrap_or(0)
}

/// A wave of `n` clients joining one site, then a tenth of them leaving.
#[derive(Debug, Clone, Default)]
pub struct Wave {
    pub n: usize,
    pub connect: Duration,
    pub settle: Spread,
    pub leave_settle: Spread,
    pub broadcasts: usize,
    pub span: Duration,
    pub delivered: u64,
    pub open: OpCost,
    pub join: OpCost,
    pub close: OpCost,
    /// The slowest broadcast: from its slot's end until its publish returned (includes the
    /// KV settle wait).
    pub slowest_broadcast_ms: u64,
    /// The most broadcasts in any one wall-clock second (the bound: 2).
    pub max_in_a_second: usize,
    /// Handshakes that had to be tried again.
    pub retries: usize,
    /// The lowest count any client was told after the whole wave had been counted: below N
    /// means live connections expired (their heartbeats queued past the presence TTL).
    pub lowest_after: u64,
    /// Why the wave could not finish, if it could not.
    pub stopped: Option<String>,
}

impl Wave {
    pub fn delivered_per_s(&self) -> f64 {
        self.delivered as f64 / self.span.as_secs_f64().max(0.001)
    }
}

/// Settle latency of each client: from `last_change` until its page shows `count` for good.
fn settle_of(clients: &[Client], count: u64, last_change: Instant) -> Spread {
    let samples: Vec<Duration> = clients
        .iter()
        .filter_map(|c| c.log().showing_since(count, last_change))
        .map(|at| at.saturating_duration_since(last_change))
        .collect();
    Spread::of(&samples)
}

pub async fn wave(stack: &Stack, ws_url: &str, site: &str, n: usize) -> Wave {
    let mut result = Wave {
        n,
        ..Wave::default()
    };
    let retries_before = clients::RETRIES.load(std::sync::atomic::Ordering::Relaxed);
    let since = epoch_ms();
    let start = Instant::now();
    let url = format!("{ws_url}/ws?siteId={site}");
    // Clients heartbeat as the real client does (30 s): a large wave outlives a heartbeat interval.
    let beat = Some(Duration::from_secs(30));
    let mut clients = match clients::connect_many(&url, site, n, CONNECT_PARALLELISM, beat).await {
        Ok(c) => c,
        Err(e) => {
            result.stopped = Some(format!("connecting: {e}"));
            return result;
        }
    };
    result.connect = start.elapsed();
    result.retries = clients::RETRIES.load(std::sync::atomic::Ordering::Relaxed) - retries_before;
    let last_change = clients
        .iter()
        .map(|c| c.connected_at)
        .max()
        .unwrap_or(start);
    let joined = clients::wait_for_count(&clients, n as u64, Duration::from_secs(120)).await;
    let phase = JoinPhase {
        site,
        since,
        start,
        last_change,
    };
    record_joins(&mut result, stack, &phase, &clients);
    if let Err(e) = joined {
        // Report what was measured before giving up.
        result.stopped = Some(e);
        result.lowest_after = clients
            .iter()
            .filter_map(|c| c.log().last_count())
            .min()
            .unwrap_or(0);
        clients::close_many(clients, CONNECT_PARALLELISM).await;
        return result;
    }
    let settled_at = clients
        .iter()
        .filter_map(|c| c.log().first_told(n as u64, last_change))
        .max()
        .unwrap_or(last_change);

    // A tenth leave cleanly.
    let leaving: Vec<Client> = clients.drain(..n / 10).collect();
    let last_leave = clients::close_many(leaving, CONNECT_PARALLELISM)
        .await
        .unwrap_or_else(Instant::now);
    let remaining = (n - n / 10) as u64;
    if let Err(e) = clients::wait_for_count(&clients, remaining, Duration::from_secs(120)).await {
        result.stopped = Some(format!("after leaves: {e}"));
    }
    result.leave_settle = settle_of(&clients, remaining, last_leave);
    result.lowest_after = clients
        .iter()
        .flat_map(|c| c.log().updates)
        .filter(|(at, _)| *at >= settled_at && *at < last_leave)
        .map(|(_, count)| count)
        .min()
        .unwrap_or(n as u64);
    // Costs are read now, while the only closes are the settled tenth.
    let site_field = format!("site={site} ");
    result.open = op_cost(stack, &[&site_field, "events=OPEN"]);
    result.join = op_cost(stack, &[&site_field, "events=TEXT"]);
    result.close = op_cost(stack, &[&site_field, "events=CLOSE"]);
    clients::close_many(clients, CONNECT_PARALLELISM).await;
    result
}

/// Continuous churn: a base population stays while clients join and leave at `rate` a second.
#[derive(Debug, Clone, Default)]
pub struct Churn {
    pub rate: u32,
    pub base: usize,
    pub seconds: u64,
    pub joins: usize,
    pub broadcasts: usize,
    pub max_in_a_second: usize,
    pub settle_after: Spread,
    pub exact_after: bool,
}

pub async fn churn(stack: &Stack, ws_url: &str, rate: u32, base: usize, seconds: u64) -> Churn {
    let site = format!("churn-{rate}");
    let url = format!("{ws_url}/ws?siteId={site}");
    let mut result = Churn {
        rate,
        base,
        seconds,
        ..Churn::default()
    };
    let Ok(stayers) = clients::connect_many(&url, &site, base, CONNECT_PARALLELISM, None).await
    else {
        return result;
    };
    if clients::wait_for_count(&stayers, base as u64, Duration::from_secs(60))
        .await
        .is_err()
    {
        return result;
    }
    let since = epoch_ms();
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut churners = Vec::new();
    while Instant::now() < deadline {
        let (url, site) = (url.clone(), site.clone());
        churners.push(tokio::spawn(async move {
            let client = clients::connect(&url, &site, None).await.ok()?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(client.close().await)
        }));
        tokio::time::sleep(gap).await;
    }
    let ends: Vec<Instant> = futures_util::future::join_all(churners)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
    result.joins = ends.len();
    let last_change = ends.into_iter().max().unwrap_or_else(Instant::now);
    result.exact_after = clients::wait_for_count(&stayers, base as u64, Duration::from_secs(60))
        .await
        .is_ok();
    result.settle_after = settle_of(&stayers, base as u64, last_change);
    let slots = broadcast_slots(stack, &site, since);
    result.broadcasts = slots.len();
    result.max_in_a_second = max_per_second(&slots);
    clients::close_many(stayers, CONNECT_PARALLELISM).await;
    result
}

/// Client-observed latency of each kind of request, against a route that does nothing.
#[derive(Debug, Clone, Default)]
pub struct Costs {
    pub noop: Spread,
    pub open: Spread,
    pub beat_fresh: Spread,
    pub beat_due: Spread,
    pub close: Spread,
    pub open_ops: OpCost,
    pub beat_ops: OpCost,
    pub close_ops: OpCost,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Runs `rounds` of: no-op, OPEN, heartbeat (key fresh), heartbeat (key due), CLOSE, each a
/// signed WebSocket-over-HTTP request straight to the app, one at a time.
pub fn costs(stack: &Stack, rounds: usize) -> Costs {
    let mut samples: [Vec<Duration>; 5] = Default::default();
    let heartbeat = b"TEXT 12\r\n{\"type\":\"heartbeat\"}\r\n".to_vec();
    let heartbeat = fix_length(&heartbeat);
    for i in 0..rounds {
        let (_, d) = timed(|| http_request(stack.app_port, "GET", "/healthz", &[], b""));
        samples[0].push(d);
        let conn = format!("cost-{i}");
        let (open, d) = timed(|| stack.signed_events("siteId=cost", &conn, &[], b"OPEN\r\n"));
        samples[1].push(d);
        let meta = |name: &str| {
            open.header(&format!("set-meta-{name}"))
                .unwrap_or("")
                .to_string()
        };
        let (site, id, exp) = (meta("site"), meta("presence-id"), meta("presence-windows"));
        let base = [
            ("Meta-Site", site.as_str()),
            ("Meta-Presence-Id", id.as_str()),
        ];
        let with_exp = |exp: String| {
            let mut h: Vec<(&str, String)> =
                base.iter().map(|(n, v)| (*n, v.to_string())).collect();
            h.push(("Meta-Presence-Windows", exp));
            h
        };
        let fresh = with_exp(exp.clone());
        let (_, d) = timed(|| stack.signed_events("", &conn, &as_refs(&fresh), &heartbeat));
        samples[2].push(d);
        // As if the presence reached one window less: this heartbeat must write that window.
        let due_windows = exp.rsplit_once(',').map_or(exp.as_str(), |(head, _)| head);
        let due = with_exp(due_windows.to_string());
        let (_, d) = timed(|| stack.signed_events("", &conn, &as_refs(&due), &heartbeat));
        samples[3].push(d);
        let (_, d) =
            timed(|| stack.signed_events("", &conn, &as_refs(&fresh), b"CLOSE 2\r\n\x03\xe8\r\n"));
        samples[4].push(d);
    }
    Costs {
        noop: Spread::of(&samples[0]),
        open: Spread::of(&samples[1]),
        beat_fresh: Spread::of(&samples[2]),
        beat_due: Spread::of(&samples[3]),
        close: Spread::of(&samples[4]),
        open_ops: op_cost(stack, &["site=cost ", "events=OPEN"]),
        beat_ops: op_cost(stack, &["site=cost ", "events=TEXT"]),
        close_ops: op_cost(stack, &["site=cost ", "events=CLOSE"]),
    }
}

fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// Rewrites a `TEXT <len>` event so its hex length matches its content.
fn fix_length(event: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(event);
    let content = text.split("\r\n").nth(1).unwrap_or("");
    format!("TEXT {:X}\r\n{content}\r\n", content.len()).into_bytes()
}

/// How soon new pages are told a count: the first count (in the reply to their join) and the
/// exact one, from the moment each socket opened.
#[derive(Debug, Clone, Default)]
pub struct FirstCount {
    /// `settled`: pages arriving one at a time on a quiet site; `burst`: many at once.
    pub kind: &'static str,
    pub base: usize,
    pub newcomers: usize,
    pub first: Spread,
    pub exact: Spread,
    /// Newcomers that were never told the exact count.
    pub never_exact: usize,
}

/// `newcomers` pages join a site where `base` readers have settled: one at a time (each on a
/// settled site) when `burst` is false, else all at once.
pub async fn first_count(
    ws_url: &str,
    base: usize,
    newcomers: usize,
    burst: bool,
) -> Result<FirstCount, String> {
    let kind = if burst { "burst" } else { "settled" };
    let site = format!("first-{kind}-{base}-{newcomers}");
    let url = format!("{ws_url}/ws?siteId={site}");
    let beat = Some(Duration::from_secs(30));
    let mut everyone = clients::connect_many(&url, &site, base, CONNECT_PARALLELISM, beat).await?;
    clients::wait_for_count(&everyone, base as u64, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut arrivals: Vec<(usize, u64)> = Vec::new();
    if burst {
        let from = everyone.len();
        everyone.extend(
            clients::connect_many(&url, &site, newcomers, CONNECT_PARALLELISM, beat).await?,
        );
        arrivals.extend((from..everyone.len()).map(|i| (i, (base + newcomers) as u64)));
    } else {
        for n in 0..newcomers {
            everyone.push(clients::connect(&url, &site, beat).await?);
            arrivals.push((everyone.len() - 1, (base + n + 1) as u64));
            // Let the site settle before the next one.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    let total = (base + newcomers) as u64;
    let _ = clients::wait_for_count(&everyone, total, Duration::from_secs(30)).await;
    let (mut first, mut exact, mut never_exact) = (Vec::new(), Vec::new(), 0);
    for (i, expected) in arrivals {
        let client = &everyone[i];
        let log = client.log();
        if let Some((at, _)) = log.updates.first() {
            first.push(at.saturating_duration_since(client.connected_at));
        }
        match log.first_told(expected, client.connected_at) {
            Some(at) => exact.push(at.saturating_duration_since(client.connected_at)),
            None => never_exact += 1,
        }
    }
    clients::close_many(everyone, CONNECT_PARALLELISM).await;
    Ok(FirstCount {
        kind,
        base,
        newcomers,
        first: Spread::of(&first),
        exact: Spread::of(&exact),
        never_exact,
    })
}
