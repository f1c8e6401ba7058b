//! A real headless Chromium, driven through ChromeDriver's WebDriver API (plain HTTP + JSON),
//! and a tiny HTTP server for the test pages that embed the widget from another origin.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::http::{http_request, try_http_request};
use crate::process::{free_port, random_u64, wait_for_port};

/// Pages served by [`PageServer`], by path.
type Pages = Arc<Mutex<HashMap<String, String>>>;

/// Serves test pages (HTML) on a free port: the "customer's website" that embeds the widget.
pub struct PageServer {
    pub port: u16,
    pages: Pages,
}

impl PageServer {
    pub fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
        let port = listener.local_addr().expect("addr").port();
        let pages: Pages = Arc::new(Mutex::new(HashMap::new()));
        let served = Arc::clone(&pages);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let pages = Arc::clone(&served);
                std::thread::spawn(move || serve_page(stream, &pages));
            }
        });
        PageServer { port, pages }
    }

    /// Adds a page and returns its URL.
    pub fn page(&self, path: &str, html: &str) -> String {
        if let Ok(mut pages) = self.pages.lock() {
            pages.insert(path.to_string(), html.to_string());
        }
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn serve_page(mut stream: std::net::TcpStream, pages: &Pages) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/");
    let page = pages.lock().ok().and_then(|p| p.get(path).cloned());
    let (status, body) = match page {
        Some(html) => ("200 OK", html),
        None => ("404 Not Found", String::new()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A ChromeDriver process and one browser session.
pub struct Browser {
    driver: Option<Child>,
    port: u16,
    session: String,
    profile: PathBuf,
}

impl Browser {
    pub fn start() -> Browser {
        let port = free_port();
        let profile = std::env::temp_dir().join(format!("lu-chrome-{:x}", random_u64()));
        let driver =
            Command::new(std::env::var_os("CHROMEDRIVER").unwrap_or_else(|| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver ($CHROMEDRIVER; scripts/setup --browser installs it)");
        let mut browser = Browser {
            driver: Some(driver),
            port,
            session: String::new(),
            profile,
        };
        wait_for_port(port, "chromedriver");
        browser.session = browser.new_session();
        browser
    }

    fn new_session(&self) -> String {
        // The flags keep headless Chromium off the (closed) network: no background services.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": crate::paths::chromium(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let value = self.call("POST", "/session", Some(caps));
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {value}"))
            .to_string()
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = http_request(
            self.port,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let value: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        assert!(
            resp.status < 300,
            "WebDriver {method} {path}: {} {value}",
            resp.status
        );
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the value) in the current tab.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Opens a new tab, switches to it, and returns its handle.
    pub fn new_tab(&self) -> String {
        let value = self.session_call("POST", "/window/new", Some(json!({"type": "tab"})));
        let handle = value["handle"].as_str().expect("tab handle").to_string();
        self.switch_to(&handle);
        handle
    }

    /// Opens a new window (a tab of its own window: minimizing one hides only its own tabs),
    /// switches to it, and returns its handle.
    pub fn new_window(&self) -> String {
        let value = self.session_call("POST", "/window/new", Some(json!({"type": "window"})));
        let handle = value["handle"].as_str().expect("window handle").to_string();
        self.switch_to(&handle);
        handle
    }

    pub fn current_tab(&self) -> String {
        self.session_call("GET", "/window", None)
            .as_str()
            .expect("handle")
            .to_string()
    }

    pub fn switch_to(&self, handle: &str) {
        self.session_call("POST", "/window", Some(json!({ "handle": handle })));
    }

    /// Closes the current tab.
    pub fn close_tab(&self) {
        self.session_call("DELETE", "/window", None);
    }

    /// Sends a DevTools command to the current tab (chromedriver's `goog/cdp/execute`): what
    /// WebDriver has no call for, such as emulating a dark colour scheme.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
    }

    /// Resizes the browser window (CSS pixels, roughly: headless has no window chrome).
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Minimizes the current tab's window: its page is hidden, as a page is in a background
    /// tab or a minimized window (`document.visibilityState` is `hidden`, and it hears
    /// `visibilitychange`), with nothing of the page's own overridden.
    pub fn minimize(&self) {
        self.session_call("POST", "/window/minimize", Some(json!({})));
    }

    /// Shows the current tab's window again (setting its size restores a minimized window).
    pub fn restore(&self) {
        self.resize(1200, 900);
    }

    /// The browser console's entries since the last call.
    pub fn console(&self) -> Vec<Value> {
        self.session_call("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.session_call("GET", "/screenshot", None);
        let png = STANDARD.decode(b64.as_str().expect("base64")).expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Waits until `script` returns `expected` in the current tab; returns the last value.
    pub fn wait_for(&self, script: &str, expected: &Value, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let value = self.eval(script);
            if &value == expected {
                return value;
            }
            if start.elapsed() > limit {
                panic!("{script} stayed {value}, expected {expected}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            // Best effort, never a panic: this may run while a failed test unwinds.
            let _ = try_http_request(self.port, "DELETE", &path, &[], b"");
        }
        if let Some(mut driver) = self.driver.take() {
            // SAFETY: signals the process group this test created for ChromeDriver and its browser.
            unsafe {
                libc::kill(-(driver.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = driver.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
