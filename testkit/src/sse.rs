//! A minimal EventSource client for tests: opens `GET /sse?…` on the stack and reads its
//! server-sent events as they arrive (chunked or not).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (empty for the default `message`).
    pub name: String,
    pub data: String,
}

/// An open event stream.
pub struct EventStream {
    stream: TcpStream,
    /// The response head (status line and headers).
    pub head: String,
    chunked: bool,
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    /// Decoded body not yet split into events.
    text: String,
    /// The server ended the stream (closed the connection, or sent the last chunk).
    ended: bool,
}

impl EventStream {
    /// Opens `path` on `port` with these request headers; the head must say 200.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<EventStream, String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut es = EventStream {
            stream,
            head: String::new(),
            chunked: false,
            raw: Vec::new(),
            text: String::new(),
            ended: false,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = find(&es.raw, b"\r\n\r\n") {
                es.head = String::from_utf8_lossy(&es.raw[..end]).into_owned();
                es.raw.drain(..end + 4);
                break;
            }
            if !es.read_some(deadline)? {
                return Err(format!(
                    "no response head: {:?}",
                    String::from_utf8_lossy(&es.raw)
                ));
            }
        }
        if !es.head.starts_with("HTTP/1.1 200") {
            return Err(es.head.clone());
        }
        es.chunked = es
            .head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Ok(es)
    }

    /// Reads more bytes until `deadline`: false when none came (time-out or closed).
    fn read_some(&mut self, deadline: Instant) -> Result<bool, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let _ = self.stream.set_read_timeout(Some(left));
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.ended = true;
                Ok(false)
            }
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Moves what can be decoded from `raw` into `text`.
    fn decode(&mut self) {
        if !self.chunked {
            self.text.push_str(&String::from_utf8_lossy(&self.raw));
            self.raw.clear();
            return;
        }
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
                return;
            };
            if size == 0 {
                // The last chunk: the response, and so the stream, is over.
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let chunk = self.raw[line_end + 2..line_end + 2 + size].to_vec();
            self.text.push_str(&String::from_utf8_lossy(&chunk));
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// Whether the server ends the stream within `wait` (events before the end are dropped).
    pub fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            self.decode();
            self.text.clear();
            if self.ended {
                return true;
            }
            match self.read_some(deadline) {
                Ok(true) => continue,
                _ => {
                    self.decode();
                    return self.ended;
                }
            }
        }
    }

    /// The next event, or `None` after `wait` (comments and keep-alives skipped).
    pub fn next_event(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + wait;
        loop {
            self.decode();
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut event = SseEvent {
                    name: String::new(),
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.name = name.trim().to_string();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(event);
                }
            }
            match self.read_some(deadline) {
                Ok(true) => continue,
                _ => return None,
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
