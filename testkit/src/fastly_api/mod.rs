//! A stand-in for Fastly's API, for running the real Fastly CLI's `compute deploy` (and the
//! project's own `liveuser configure` and `teardown`) against it: `FASTLY_API_ENDPOINT` and
//! `FASTLY_ACCOUNT_ENDPOINT` point the CLI here.
//!
//! It answers only what those ask, the way the API does (paths, form or JSON bodies, the
//! response fields the CLI reads), keeps what they created (services, versions, domains,
//! backends, stores, links, products, packages, activations) so a test can assert on it, and
//! records every request. Anything it does not know is answered 404 and recorded, so a test can
//! insist there was none. What it holds is [`state`]'s; what a deploy asks, [`routes`]'; what a
//! teardown and a stored token ask, [`account`]'s.

mod account;
mod routes;
mod state;

pub use state::{Backend, Recorded, Service, State, Store, Version};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A running stand-in.
pub struct FastlyApi {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl FastlyApi {
    pub fn start() -> FastlyApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API stand-in");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FastlyApi { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A copy of what it holds now.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("state"))
    }

    /// Changes what it holds (a test setting up what the account has).
    pub fn with_state_mut<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("state"))
    }
}

/// Serves the requests of one connection (the CLI keeps connections alive).
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let Ok(write) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write;
    while let Some(mut req) = read_request(&mut reader) {
        let (status, body) = {
            let mut s = state.lock().expect("state");
            let (status, body) = routes::route(&mut s, &req);
            req.status = status;
            req.known = body.get("msg").and_then(Value::as_str) != Some(routes::UNKNOWN);
            s.requests.push(req);
            (status, body)
        };
        let text = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(text.as_bytes()).is_err()
        {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let len = header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        body
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Recorded {
        method,
        path,
        query,
        headers,
        body,
        status: 0,
        known: true,
    })
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0u8; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}
