//! A real WebSocket client for the tests (tungstenite over a plain TCP socket).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

pub struct Client {
    ws: WebSocket<TcpStream>,
}

/// What a read produced.
#[derive(Debug)]
pub enum Received {
    Text(String),
    Closed(Option<u16>),
    TimedOut,
}

impl Client {
    /// Opens a WebSocket to `url` (ws://127.0.0.1:port/path?query).
    pub fn connect(url: &str) -> Client {
        Client::try_connect(url).unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    pub fn try_connect(url: &str) -> Result<Client, String> {
        Client::try_connect_from(url, None)
    }

    /// Connects as a page on `origin` would (browsers send an `Origin` header).
    pub fn try_connect_from(url: &str, origin: Option<&str>) -> Result<Client, String> {
        Client::try_connect_as(url, origin, None)
    }

    /// Connects from the loopback address `address` (a distinct client; see `net`).
    pub fn try_connect_as(
        url: &str,
        origin: Option<&str>,
        address: Option<Ipv4Addr>,
    ) -> Result<Client, String> {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        Client::try_connect_with(url, &headers, address)
    }

    /// Connects with these request headers (an `Origin`, a `User-Agent`), from `address`.
    pub fn try_connect_with(
        url: &str,
        headers: &[(&str, &str)],
        address: Option<Ipv4Addr>,
    ) -> Result<Client, String> {
        use tungstenite::client::IntoClientRequest;
        let rest = url.strip_prefix("ws://").ok_or("not a ws:// url")?;
        let host = rest.split('/').next().ok_or("no host")?;
        let stream = crate::net::connect(host, address)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("bad header name {name}"))?;
            let value = value.parse().map_err(|_| format!("bad {name} value"))?;
            request.headers_mut().insert(name, value);
        }
        let (ws, _response) = tungstenite::client(request, stream).map_err(|e| e.to_string())?;
        Ok(Client { ws })
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// The next text message, close, or a time-out after `wait`.
    pub fn recv(&mut self, wait: Duration) -> Received {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::TimedOut;
            }
            let _ = self.ws.get_mut().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(text)) => return Received::Text(text.to_string()),
                Ok(Message::Close(frame)) => {
                    return Received::Closed(frame.map(|f| u16::from(f.code)))
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Received::TimedOut
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Received::Closed(None)
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Starts a clean close with `code`.
    pub fn close(&mut self, code: u16) {
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        }));
    }
}
