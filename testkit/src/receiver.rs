//! A webhook receiver on a free loopback port, as a site owner would write one: it checks each
//! delivery's `LiveUser-Signature` (HMAC-SHA256 of `"<t>.<body>"` under the hook's secret, and a
//! timestamp within five minutes), drops a delivery id it has taken already, and keeps what it
//! took. Written from the documented scheme, not from the service's code, so a test of the two
//! together checks the documentation too.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from the receiver's clock.
pub const TOLERANCE_SECS: u64 = 300;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why the signature was refused, if it was.
    pub refused: Option<String>,
    /// The status it answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    secret: Option<String>,
    /// Statuses to answer valid deliveries with, in turn, before 204s.
    answers: VecDeque<u16>,
    received: Vec<Received>,
    taken_ids: Vec<String>,
}

/// A running receiver.
pub struct Receiver {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Receiver { port, shared }
    }

    /// The URL deliveries go to.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The secret signatures are checked with (known once the hook is added).
    pub fn set_secret(&self, secret: &str) {
        self.lock().secret = Some(secret.to_string());
    }

    /// Answers the next valid deliveries with these statuses (then 204s): a receiver that is
    /// down for a moment.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.lock().answers.extend(statuses);
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The deliveries taken: signed right, answered 2xx, and not a repeat of one taken.
    pub fn taken(&self) -> Vec<serde_json::Value> {
        let shared = self.lock();
        shared
            .received
            .iter()
            .filter(|r| r.refused.is_none() && (200..300).contains(&r.status))
            .map(Received::json)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks `header` against `body` under `secret`, now.
pub fn check_signature(secret: &str, header: &str, body: &[u8]) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("no t= in the signature")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if now.abs_diff(t) > TOLERANCE_SECS {
        return Err(format!(
            "timestamp {t} is more than {TOLERANCE_SECS} s from {now}"
        ));
    }
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if v1.iter().any(|s| s == &expected) {
        Ok(())
    } else {
        Err("no v1 matches".into())
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut received = Received {
        path,
        headers,
        body,
        refused: None,
        status: 204,
        at: Instant::now(),
    };
    let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
    received.refused = match (&state.secret, received.header("liveuser-signature")) {
        (Some(secret), Some(header)) => check_signature(secret, header, &received.body).err(),
        (None, _) => Some("no secret set yet".into()),
        (_, None) => Some("no signature".into()),
    };
    let id = received.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    received.status = if received.refused.is_some() {
        400
    } else if let Some(status) = state.answers.pop_front() {
        status
    } else if state.taken_ids.contains(&id) {
        // A repeat of a delivery taken: acknowledged, not taken again.
        received.refused = Some("a repeat".into());
        200
    } else {
        state.taken_ids.push(id);
        204
    };
    let status = received.status;
    state.received.push(received);
    drop(state);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.flush();
}
