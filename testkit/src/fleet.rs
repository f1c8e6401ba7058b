//! Many real WebSocket clients at once, each on its own thread, behaving like the LiveUser
//! client (join after open, heartbeats) and recording every message it is told.

use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// What one client has seen.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub messages: Vec<Value>,
    pub last_count: Option<u64>,
    /// The last `totalCount` told (in an update or a heartbeat reply).
    pub last_total: Option<u64>,
    /// Set when the connection ended: the close code, if the server sent one.
    pub closed: Option<Option<u16>>,
}

enum Command {
    Close(u16),
    Reset,
}

/// One client of the fleet.
pub struct Peer {
    commands: Sender<Command>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

/// How a peer behaves.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    pub heartbeat_every: Option<Duration>,
    pub send_join: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            heartbeat_every: None,
            send_join: true,
        }
    }
}

impl Peer {
    pub fn connect(url: &str, site: &str, options: PeerOptions) -> Peer {
        Peer::try_connect(url, site, options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Peer::connect`], trying again for up to thirty seconds while the connection or
    /// handshake is refused, as a browser's client does (a Pushpin that has just restarted
    /// answers 502 until it is ready, longer on a machine busy with other tests).
    pub fn connect_retrying(url: &str, site: &str, options: PeerOptions) -> Peer {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Peer::try_connect(url, site, options.clone()) {
                Ok(peer) => return peer,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("{e}; trying again");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// [`Peer::connect`], with a refused connection or handshake as an error (a browser would
    /// try again).
    pub fn try_connect(url: &str, site: &str, options: PeerOptions) -> Result<Peer, String> {
        let rest = url.strip_prefix("ws://").expect("ws url");
        let host = rest.split('/').next().expect("host");
        let stream = TcpStream::connect(host).map_err(|e| format!("connect {url}: {e}"))?;
        let (ws, _) =
            tungstenite::client(url, stream).map_err(|e| format!("handshake {url}: {e}"))?;
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(25)))
            .expect("timeout");
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let client_id = format!("c{:x}", crate::process::random_u64());
        let thread_seen = Arc::clone(&seen);
        let site_owned = site.to_string();
        let thread =
            std::thread::spawn(move || run(ws, rx, thread_seen, site_owned, client_id, options));
        Ok(Peer {
            commands: tx,
            seen,
            thread: Some(thread),
        })
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn last_count(&self) -> Option<u64> {
        self.seen.lock().ok().and_then(|s| s.last_count)
    }

    pub fn close(mut self, code: u16) -> Seen {
        let _ = self.commands.send(Command::Close(code));
        self.join_thread();
        self.seen()
    }

    /// Drops the TCP connection with a reset, no close handshake.
    pub fn reset(mut self) {
        let _ = self.commands.send(Command::Reset);
        self.join_thread();
    }

    fn join_thread(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Reset);
        self.join_thread();
    }
}

fn run(
    mut ws: WebSocket<TcpStream>,
    commands: Receiver<Command>,
    seen: Arc<Mutex<Seen>>,
    site: String,
    client_id: String,
    options: PeerOptions,
) {
    if options.send_join {
        let join = json!({"type": "join", "siteId": site, "clientId": client_id});
        let _ = ws.send(Message::text(join.to_string()));
    }
    let mut next_heartbeat = options.heartbeat_every.map(|every| Instant::now() + every);
    loop {
        match commands.try_recv() {
            Ok(Command::Close(code)) => {
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: "".into(),
                }));
                // Read until the server's close arrives (or the socket ends).
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && !record(&mut ws, &seen) {}
                return;
            }
            Ok(Command::Reset) | Err(TryRecvError::Disconnected) => {
                reset(&ws);
                return;
            }
            Err(TryRecvError::Empty) => {}
        }
        if let (Some(at), Some(every)) = (next_heartbeat, options.heartbeat_every) {
            if Instant::now() >= at {
                let beat = json!({"type": "heartbeat", "siteId": site, "clientId": client_id, "timestamp": 0});
                let _ = ws.send(Message::text(beat.to_string()));
                next_heartbeat = Some(at + every);
            }
        }
        if record(&mut ws, &seen) {
            return;
        }
    }
}

/// Reads one message (or times out); returns true when the connection has ended.
fn record(ws: &mut WebSocket<TcpStream>, seen: &Arc<Mutex<Seen>>) -> bool {
    let result = ws.read();
    let Ok(mut seen) = seen.lock() else {
        return true;
    };
    match result {
        Ok(Message::Text(text)) => {
            let value: Value =
                serde_json::from_str(&text).unwrap_or(Value::String(text.to_string()));
            if value["type"] == "update" {
                seen.last_count = value["count"].as_u64();
            }
            if let Some(total) = value["totalCount"].as_u64() {
                seen.last_total = Some(total);
            }
            seen.messages.push(value);
            false
        }
        Ok(Message::Close(frame)) => {
            seen.closed = Some(frame.map(|f| u16::from(f.code)));
            // Let tungstenite answer the close, then stop.
            drop(seen);
            let _ = ws.flush();
            true
        }
        Ok(_) => false,
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(_) => {
            if seen.closed.is_none() {
                seen.closed = Some(None);
            }
            true
        }
    }
}

fn reset(ws: &WebSocket<TcpStream>) {
    use std::os::fd::AsRawFd;
    // SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this thread owns, with a correctly sized value.
    unsafe {
        libc::setsockopt(
            ws.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// How many connects run at once. Debian's Pushpin 1.36 occasionally loses a WebSocket
/// session (accepted, but never subscribed and its messages never forwarded) when hundreds of
/// handshakes land in the same few milliseconds; 16 at a time is still a burst for the app
/// (hundreds of OPENs a second) without tripping that.
const CONNECT_PARALLELISM: usize = 16;

/// Connects `n` peers to `site`, [`CONNECT_PARALLELISM`] at a time.
pub fn connect_many(url: &str, site: &str, n: usize, options: &PeerOptions) -> Vec<Peer> {
    let mut peers = Vec::with_capacity(n);
    while peers.len() < n {
        let batch = CONNECT_PARALLELISM.min(n - peers.len());
        let handles: Vec<JoinHandle<Peer>> = (0..batch)
            .map(|_| {
                let (url, site, options) = (url.to_string(), site.to_string(), options.clone());
                std::thread::spawn(move || Peer::connect_retrying(&url, &site, options))
            })
            .collect();
        peers.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("peer connected")),
        );
    }
    peers
}

/// Waits (up to `limit`) until every peer's last total is `expected`.
pub fn wait_for_total(peers: &[Peer], expected: u64, limit: Duration) {
    wait_for_all(peers, "total", |p| p.seen().last_total, expected, limit);
}

/// Waits (up to `limit`) until every peer's last count is `expected`; panics with what each
/// peer last saw otherwise. The limit is a liveness bound, not a performance assertion.
pub fn wait_for_count(peers: &[Peer], expected: u64, limit: Duration) -> Duration {
    wait_for_all(peers, "count", Peer::last_count, expected, limit)
}

/// Waits until `read` gives `expected` for every peer; returns how long that took.
fn wait_for_all(
    peers: &[Peer],
    what: &str,
    read: impl Fn(&Peer) -> Option<u64>,
    expected: u64,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let values: Vec<Option<u64>> = peers.iter().map(&read).collect();
        if values.iter().all(|v| *v == Some(expected)) {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("peers did not all reach {what} {expected} within {limit:?}; last: {values:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
