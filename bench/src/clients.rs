//! Async WebSocket clients that behave like the LiveUser client (join after open, optional
//! heartbeats) and record every count they are told, with the time they were told it.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Whether a page told `told` shows what it would for `expected`: the same number, or above a
/// thousand the same short form ("4.5K"). The service tells pages only what they would show
/// differently (the API and the badge keep the exact count), so that is what a page is
/// judged on.
pub fn shows_as(told: u64, expected: u64) -> bool {
    use liveuser_edge::wire::protocol::compact;
    told == expected || compact(told).is_some_and(|shown| compact(expected) == Some(shown))
}

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct ClientLog {
    /// Every `update`: when it arrived and the count it carried.
    pub updates: Vec<(Instant, u64)>,
    /// Every text message received.
    pub messages: u64,
    pub closed: bool,
}

impl ClientLog {
    pub fn last_count(&self) -> Option<u64> {
        self.updates.last().map(|(_, c)| *c)
    }

    /// From when this client's page has shown `count` (see [`shows_as`]) without a break, if
    /// it shows it now: `since` when it already did before then (a page told 4,960 shows 5K,
    /// and is not told again when the count becomes 5,000).
    pub fn showing_since(&self, count: u64, since: Instant) -> Option<Instant> {
        let mut showing: Option<Instant> = None;
        for (at, told) in &self.updates {
            if !shows_as(*told, count) {
                showing = None;
            } else if showing.is_none() {
                showing = Some((*at).max(since));
            }
        }
        showing
    }

    /// When this client was first told a count its page shows as `count` at or after `since`.
    pub fn first_told(&self, count: u64, since: Instant) -> Option<Instant> {
        self.updates
            .iter()
            .filter(|(at, c)| shows_as(*c, count) && *at >= since)
            .map(|(at, _)| *at)
            .next()
    }
}

/// A running client.
pub struct Client {
    pub log: Arc<Mutex<ClientLog>>,
    /// When its handshake completed (its OPEN had been processed by the app).
    pub connected_at: Instant,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Client {
    pub fn log(&self) -> ClientLog {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Closes cleanly (close frame, waits for the answer) and returns when done.
    pub async fn close(mut self) -> Instant {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Instant::now()
    }
}

/// Handshakes that failed and were tried again, across all clients (reported: local Pushpin
/// answers an occasional 502 under a burst, and real clients reconnect too).
pub static RETRIES: AtomicUsize = AtomicUsize::new(0);
const ATTEMPTS: u32 = 3;

/// Connects one client to `url` (up to three attempts) and starts recording.
pub async fn connect(url: &str, site: &str, heartbeat: Option<Duration>) -> Result<Client, String> {
    connect_as(url, site, heartbeat, None, ATTEMPTS).await
}

/// [`connect`] from the loopback address `from` (a distinct client: all of 127.0.0.0/8 reaches
/// this machine), with at most `attempts` handshakes.
pub async fn connect_as(
    url: &str,
    site: &str,
    heartbeat: Option<Duration>,
    from: Option<Ipv4Addr>,
    attempts: u32,
) -> Result<Client, String> {
    let mut attempt = 1;
    let ws = loop {
        match handshake(url, from).await {
            Ok(ws) => break ws,
            Err(e) if attempt >= attempts => return Err(e.to_string()),
            Err(_) => {
                RETRIES.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let connected_at = Instant::now();
    let (mut sink, mut stream) = ws.split();
    let join = serde_json::json!({"type": "join", "siteId": site, "clientId": "bench"}).to_string();
    sink.send(Message::text(join))
        .await
        .map_err(|e| e.to_string())?;
    let log = Arc::new(Mutex::new(ClientLog::default()));
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let task_log = Arc::clone(&log);
    let site = site.to_string();
    let task = tokio::spawn(async move {
        let mut beat = heartbeat
            .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => record(&task_log, &text),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                _ = &mut stop_rx => {
                    let _ = sink.send(Message::Close(None)).await;
                    // Wait (briefly) for the server's close, as a browser does.
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(Ok(m)) = stream.next().await {
                            if m.is_close() { break; }
                        }
                    }).await;
                    break;
                }
                _ = tick(&mut beat) => {
                    let msg = serde_json::json!({"type": "heartbeat", "siteId": site, "clientId": "bench", "timestamp": 0});
                    let _ = sink.send(Message::text(msg.to_string())).await;
                }
            }
        }
        if let Ok(mut log) = task_log.lock() {
            log.closed = true;
        }
    });
    Ok(Client {
        log,
        connected_at,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One WebSocket handshake, from `from` when given.
async fn handshake(url: &str, from: Option<Ipv4Addr>) -> Result<Socket, String> {
    let Some(from) = from else {
        return tokio_tungstenite::connect_async(url)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| e.to_string());
    };
    let host = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or("not a ws:// url")?;
    let target: std::net::SocketAddr = host.parse().map_err(|_| "not an address".to_string())?;
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind((from, 0).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = socket.connect(target).await.map_err(|e| e.to_string())?;
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    tokio_tungstenite::client_async(url, stream)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

async fn tick(beat: &mut Option<tokio::time::Interval>) {
    match beat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn record(log: &Arc<Mutex<ClientLog>>, text: &str) {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if let Ok(mut log) = log.lock() {
        log.messages += 1;
        if value["type"] == "update" {
            if let Some(count) = value["count"].as_u64() {
                log.updates.push((Instant::now(), count));
            }
        }
    }
}

/// Connects `n` clients, `parallel` handshakes at a time.
pub async fn connect_many(
    url: &str,
    site: &str,
    n: usize,
    parallel: usize,
    heartbeat: Option<Duration>,
) -> Result<Vec<Client>, String> {
    let results: Vec<Result<Client, String>> = futures_util::stream::iter(0..n)
        .map(|_| connect(url, site, heartbeat))
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Closes `clients` cleanly, `parallel` at a time; returns when the last close completed.
pub async fn close_many(clients: Vec<Client>, parallel: usize) -> Option<Instant> {
    let ends: Vec<Instant> = futures_util::stream::iter(clients)
        .map(Client::close)
        .buffer_unordered(parallel)
        .collect()
        .await;
    ends.into_iter().max()
}

/// Waits until every client's page shows `expected` (see [`shows_as`]), or `limit` passes.
pub async fn wait_for_count(
    clients: &[Client],
    expected: u64,
    limit: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let behind = clients
            .iter()
            .filter(|c| !c.log().last_count().is_some_and(|n| shows_as(n, expected)))
            .count();
        if behind == 0 {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "{behind} of {} clients not showing {expected} after {limit:?}",
                clients.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::shows_as;

    #[test]
    fn a_page_settles_when_it_shows_the_count_for_good() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let log = super::ClientLog {
            updates: vec![
                (at(0), 4_960),
                (at(10), 4_800),
                (at(20), 4_990),
                (at(30), 5_000),
            ],
            ..Default::default()
        };
        assert_eq!(
            log.showing_since(5_000, at(15)),
            Some(at(20)),
            "shows 5K from 20 ms on"
        );
        assert_eq!(
            log.showing_since(5_000, at(25)),
            Some(at(25)),
            "already showing it"
        );
        assert_eq!(
            log.showing_since(4_800, at(0)),
            None,
            "no longer shows 4.8K"
        );
    }

    #[test]
    fn a_page_is_judged_on_what_the_widget_shows() {
        assert!(shows_as(999, 999));
        assert!(!shows_as(998, 999), "below a thousand, the number itself");
        assert!(shows_as(4_540, 4_500), "both 4.5K");
        assert!(!shows_as(4_560, 4_500), "4.6K is not 4.5K");
        assert!(shows_as(4_950, 5_000), "toFixed(1) of 4.95 is 5.0: 5K");
        assert!(!shows_as(1_000, 999), "1K is not 999");
    }
}
