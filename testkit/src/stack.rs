//! A real local stack for one test: Pushpin (standing in for Fanout) and Viceroy running the
//! wasm this project ships, on free ports, with their own run folder and logs.
//!
//! Every process is started in its own process group and is killed when the [`Stack`] is
//! dropped, also when the test panics. They also get a parent-death signal, so a test binary
//! killed outright does not leave them behind.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The project's root folder.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The wasm the tests run: the release build `scripts/test` makes before running them.
pub fn wasm_path() -> PathBuf {
    project_root().join("target/wasm32-wasip1/release/liveuser-edge.wasm")
}

/// A random 64-bit number (std's hasher keys are random per process and per call).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// An HS256 Grip-Sig as Pushpin makes them (for forging tests: with the wrong key it is a
/// forgery, with the stack's key it is what Pushpin would send).
pub fn hs256_token(key: &[u8], issuer: &str, exp: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{issuer}","exp":{exp}}}"#))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Settings for one stack.
#[derive(Clone, Debug, Default)]
pub struct StackOptions {
    /// Values for the `liveuser_config` config store, over fastly.toml's.
    pub config: Vec<(String, String)>,
    /// Leave the admin token out of the secret store.
    pub no_admin_token: bool,
    /// Extra entries for the `liveuser_secrets` secret store.
    pub secrets: Vec<(String, String)>,
    /// Where the `fastly_api` backend points (a stand-in for Fastly's API).
    pub fastly_api_url: Option<String>,
}

impl StackOptions {
    pub fn with_secret(mut self, key: &str, value: &str) -> Self {
        self.secrets.push((key.to_string(), value.to_string()));
        self
    }

    pub fn with_fastly_api(mut self, url: &str) -> Self {
        self.fastly_api_url = Some(url.to_string());
        self
    }

    pub fn without_admin_token(mut self) -> Self {
        self.no_admin_token = true;
        self
    }

    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running Pushpin + Viceroy pair.
pub struct Stack {
    pub app_port: u16,
    pub proxy_port: u16,
    pub publish_port: u16,
    pub grip_key: String,
    pub admin_token: String,
    dir: PathBuf,
    pushpin: Option<Child>,
    viceroy: Option<Child>,
    options: StackOptions,
}

static STACKS: AtomicUsize = AtomicUsize::new(0);

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(StackOptions::default())
    }

    pub fn start_with(options: StackOptions) -> Stack {
        check_wasm_is_fresh();
        let n = STACKS.fetch_add(1, Ordering::SeqCst);
        // Short, so Pushpin's unix socket paths stay under the 108-byte limit.
        let dir = std::env::temp_dir().join(format!("lu-e2e-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("run")).expect("create run dir");
        fs::create_dir_all(dir.join("log")).expect("create log dir");
        let mut stack = Stack {
            app_port: free_port(),
            proxy_port: free_port(),
            publish_port: free_port(),
            grip_key: format!("e2e-{:016x}{:016x}", random_u64(), random_u64()),
            admin_token: format!("admin-{:016x}", random_u64()),
            dir,
            pushpin: None,
            viceroy: None,
            options,
        };
        stack.start_pushpin();
        stack.start_viceroy();
        stack
    }

    fn start_pushpin(&mut self) {
        let template = fs::read_to_string(project_root().join("local/pushpin.conf.template"))
            .expect("read pushpin template");
        let conf = template
            .replace("@RUNDIR@", &self.dir.join("run").display().to_string())
            .replace("@LOGDIR@", &self.dir.join("log").display().to_string())
            .replace("@HTTP_PORT@", &self.proxy_port.to_string())
            .replace("@PUBLISH_PORT@", &self.publish_port.to_string())
            .replace("@SIG_KEY@", &self.grip_key);
        fs::write(self.dir.join("pushpin.conf"), conf).expect("write pushpin.conf");
        let routes = fs::read_to_string(project_root().join("local/routes.template"))
            .expect("read routes template")
            .replace("@ORIGIN@", &format!("127.0.0.1:{}", self.app_port));
        fs::write(self.dir.join("routes"), routes).expect("write routes");

        let child = spawn(
            Command::new("pushpin")
                .arg("--config")
                .arg(self.dir.join("pushpin.conf"))
                .arg("--logfile")
                .arg(self.dir.join("log/pushpin.log")),
            &self.dir.join("log/pushpin.out"),
            libc::SIGTERM,
        );
        self.pushpin = Some(child);
        wait_for_port(self.proxy_port, "Pushpin proxy");
        wait_for_port(self.publish_port, "Pushpin publish");
    }

    fn start_viceroy(&mut self) {
        let manifest = self.fastly_toml();
        let manifest_path = self.dir.join("fastly.toml");
        fs::write(&manifest_path, manifest).expect("write fastly.toml");
        let child = spawn(
            Command::new(viceroy_binary())
                .arg("serve")
                .arg("-C")
                .arg(&manifest_path)
                .arg("--addr")
                .arg(format!("127.0.0.1:{}", self.app_port))
                .arg("--local-pushpin-proxy-port")
                .arg(self.proxy_port.to_string())
                .arg(wasm_path()),
            &self.dir.join("log/viceroy.log"),
            libc::SIGKILL,
        );
        self.viceroy = Some(child);
        wait_for_port(self.app_port, "Viceroy");
    }

    /// The project's fastly.toml with this stack's ports, key and config values.
    fn fastly_toml(&self) -> String {
        let mut text =
            fs::read_to_string(project_root().join("fastly.toml")).expect("read fastly.toml");
        text = text
            .replace(
                "http://127.0.0.1:7676",
                &format!("http://127.0.0.1:{}", self.app_port),
            )
            .replace(
                "http://127.0.0.1:5561",
                &format!("http://127.0.0.1:{}", self.publish_port),
            )
            .replace("liveuser-local-development-grip-key", &self.grip_key)
            .replace("liveuser-local-development-admin-token", &self.admin_token);
        if self.options.no_admin_token {
            text = text
                .lines()
                .filter(|l| !l.contains("key = \"admin_token\""))
                .collect::<Vec<_>>()
                .join("\n");
        }
        for (key, value) in &self.options.config {
            text = set_config_value(&text, key, value);
        }
        for (key, value) in &self.options.secrets {
            text = text.replace(
                "liveuser_secrets = [\n",
                &format!("liveuser_secrets = [\n  {{ key = \"{key}\", data = \"{value}\" }},\n"),
            );
        }
        if let Some(url) = &self.options.fastly_api_url {
            text = text.replace(
                "url = \"https://api.fastly.com\"",
                &format!("url = \"{url}\""),
            );
        }
        text
    }

    /// The WebSocket URL for `query` (e.g. `siteId=a`).
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?{query}", self.app_port)
    }

    /// The WebSocket origin of Pushpin's own port: the path production browsers take (they
    /// reach Fanout directly), without Viceroy's local handoff proxy in between.
    pub fn fanout_ws_origin(&self) -> String {
        format!("ws://127.0.0.1:{}", self.proxy_port)
    }

    /// Publishes `content` to `channel` through Pushpin's publish endpoint.
    pub fn publish(&self, channel: &str, content: &str) -> u16 {
        let body = serde_json::json!({
            "items": [{"channel": channel, "formats": {"ws-message": {"content": content}}}]
        })
        .to_string();
        http_request(
            self.publish_port,
            "POST",
            "/publish/",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .status
    }

    /// `GET path` on the app, as JSON (panics on a non-200).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self.http("GET", path, &[], b"");
        assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
        resp.json()
    }

    /// A WebSocket-over-HTTP request straight to the app, signed as this stack's Pushpin
    /// signs them: lets a test make hundreds of events land at the same moment.
    /// `extra` carries the `Meta-*` headers Pushpin would send back on later requests.
    pub fn signed_events(
        &self,
        query: &str,
        connection_id: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let sig = hs256_token(self.grip_key.as_bytes(), "pushpin", 4_000_000_000);
        let mut headers = vec![
            ("Content-Type", "application/websocket-events"),
            ("Connection-Id", connection_id),
            ("Grip-Sig", sig.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.http("POST", &format!("/ws?{query}"), &headers, body)
    }

    /// A plain HTTP request to the app.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(self.app_port, method, path, headers, body)
    }

    /// What the app has printed so far (one line per request, among Viceroy's own lines).
    pub fn app_log(&self) -> String {
        fs::read_to_string(self.dir.join("log/viceroy.log")).unwrap_or_default()
    }

    /// Lines of the app log that contain `needle`.
    pub fn app_log_lines(&self, needle: &str) -> Vec<String> {
        self.app_log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Kills Pushpin outright (as a crashed Fanout node would vanish) and starts it again.
    pub fn kill_and_restart_pushpin(&mut self) {
        if let Some(child) = self.pushpin.take() {
            stop(child, libc::SIGKILL);
        }
        // SIGKILL leaves the runner's children (condure, zurl, ...) behind: end them too.
        kill_by_rundir(&self.dir.join("run"));
        wait_for_port_closed(self.proxy_port);
        wait_for_port_closed(self.publish_port);
        self.start_pushpin();
    }

    fn tail_logs(&self) -> String {
        let mut out = String::new();
        for name in ["viceroy.log", "pushpin.log", "pushpin.out"] {
            let text = fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(40);
            out.push_str(&format!(
                "--- last lines of {name} ---\n{}\n",
                lines[start..].join("\n")
            ));
        }
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "stack in {} failed a test:\n{}",
                self.dir.display(),
                self.tail_logs()
            );
        }
        if let Some(child) = self.viceroy.take() {
            stop(child, libc::SIGKILL);
        }
        if let Some(child) = self.pushpin.take() {
            stop(child, libc::SIGTERM);
        }
        kill_by_rundir(&self.dir.join("run"));
        // A failed test keeps its logs; LIVEUSER_KEEP_STACK=1 keeps them always.
        let keep = std::env::var_os("LIVEUSER_KEEP_STACK").is_some();
        if !std::thread::panicking() && !keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Replaces (or adds) `key = "value"` in the `liveuser_config` contents table.
fn set_config_value(text: &str, key: &str, value: &str) -> String {
    let header = "[local_server.config_stores.liveuser_config.contents]";
    // Quoted, so keys with dots (`origins.<site>`) stay flat keys.
    let line = format!("\"{key}\" = \"{value}\"");
    let mut out = Vec::new();
    let mut in_table = false;
    let mut done = false;
    for l in text.lines() {
        if l.trim_start().starts_with('[') {
            if in_table && !done {
                out.push(line.clone());
                done = true;
            }
            in_table = l.trim() == header;
        }
        let line_key = l.split('=').next().map(|k| k.trim().trim_matches('"'));
        if in_table && !done && line_key == Some(key) {
            out.push(line.clone());
            done = true;
            continue;
        }
        out.push(l.to_string());
    }
    if in_table && !done {
        out.push(line);
    }
    out.join("\n") + "\n"
}

fn viceroy_binary() -> PathBuf {
    let home_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/viceroy"));
    match home_bin {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("viceroy"),
    }
}

fn check_wasm_is_fresh() {
    let wasm = wasm_path();
    let built = fs::metadata(&wasm)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run scripts/test, which builds it first",
                wasm.display()
            )
        });
    let root = project_root();
    for dir in ["src", "static"] {
        for path in walk(&root.join(dir)) {
            let modified = fs::metadata(&path)
                .and_then(|m| m.modified())
                .expect("mtime");
            assert!(
                modified <= built,
                "{} is newer than the wasm under test: run scripts/test, which rebuilds it",
                path.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Spawns `cmd` in its own process group, output to `log`, with `death_signal` sent to it if
/// this test process dies first.
fn spawn(cmd: &mut Command, log: &Path, death_signal: libc::c_int) -> Child {
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log handle");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, death_signal);
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e} (run scripts/setup)", cmd.get_program()))
}

/// Signals the child's process group and waits for it, escalating to SIGKILL after 5 s.
fn stop(mut child: Child, signal: libc::c_int) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain syscalls on a process group this test created.
    unsafe {
        libc::kill(-pgid, signal);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Kills every process whose pid file lies in Pushpin's run folder.
fn kill_by_rundir(rundir: &Path) {
    for entry in fs::read_dir(rundir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pid") {
            continue;
        }
        let pid = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<libc::pid_t>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            // SAFETY: a plain kill of a pid Pushpin recorded for this stack.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = fs::remove_file(&path);
    }
}

/// Waits (up to 30 s) until something listens on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    if !wait_until_listening(port, true) {
        panic!("{what} did not listen on port {port} within 30 s");
    }
}

fn wait_for_port_closed(port: u16) {
    if !wait_until_listening(port, false) {
        panic!("port {port} still listening 30 s after its process was killed");
    }
}

/// Polls `port` until whether it accepts connections is `listening`; false after 30 s.
fn wait_until_listening(port: u16, listening: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() == listening {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A response read by [`http_request`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough for tests.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let raw = read_response(&mut stream, method == "HEAD");
    parse_response(&raw, method == "HEAD")
}

/// Reads one response: up to its Content-Length, the end of its chunks, or EOF. (Some
/// servers keep the connection open despite `Connection: close`.)
fn read_response(stream: &mut TcpStream, head_only: bool) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                _ if head_only => true,
                Some(n) => body.len() >= n,
                None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done {
                return raw;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read response: {e}"),
        }
    }
}

fn parse_response(raw: &[u8], head_only: bool) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = data.get(end + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_replace_or_join_the_config_table() {
        let toml = "[a]\nx = 1\n[local_server.config_stores.liveuser_config.contents]\nheartbeat_interval_secs = \"30\"\n[b]\ny = 2\n";
        let replaced = set_config_value(toml, "heartbeat_interval_secs", "2");
        assert!(replaced.contains("\"heartbeat_interval_secs\" = \"2\""));
        assert!(!replaced.contains("\"30\""));
        let added = set_config_value(toml, "origins.shop", "https://a.example");
        let table = added.split("[b]").next().unwrap_or("");
        assert!(
            table.contains("\"origins.shop\" = \"https://a.example\""),
            "{added}"
        );
    }

    #[test]
    fn responses_parse_with_lengths_and_chunks() {
        let plain = parse_response(b"HTTP/1.1 404 Not Found\r\nX-A: b\r\n\r\nnope", false);
        assert_eq!(
            (plain.status, plain.header("x-a"), plain.text().as_str()),
            (404, Some("b"), "nope")
        );
        let chunked = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", false);
        assert_eq!(chunked.text(), "abcde");
    }
}
