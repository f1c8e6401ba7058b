//! A real local stack for one test: Pushpin (standing in for Fanout) and Viceroy running the
//! wasm this project ships, on free ports, with their own run folder, signing key and logs.
//!
//! Every process is started in its own process group and is killed when the [`Stack`] is
//! dropped, also when the test panics. They also get a parent-death signal, so a test binary
//! killed outright does not leave them behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};

use liveuser_edge::platform::fastly_toml::{
    ADMIN_TOKEN_SECRET, FANOUT_BACKEND, FASTLY_API_BACKEND, GRIP_KEY_SECRET, LOCAL_PUBLISH_BACKEND,
};

use crate::http::{http_request, HttpResponse};
use crate::jwt::hs256_token;
use crate::manifest::Manifest;
use crate::paths::{project_root, wasm_path};
use crate::process::{
    free_port, kill_by_rundir, random_u64, spawn, stop, viceroy_binary, wait_for_port,
    wait_for_port_closed,
};

/// Settings for one stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Values for the `liveuser_config` config store, over fastly.toml's.
    pub config: Vec<(String, String)>,
    /// Leave the admin token out of the secret store.
    pub no_admin_token: bool,
    /// Extra entries for the `liveuser_secrets` secret store.
    pub secrets: Vec<(String, String)>,
    /// Where the `fastly_api` backend points (a stand-in for Fastly's API).
    pub fastly_api_url: Option<String>,
    /// Where the local publish backend points, when not straight at Pushpin (a proxy a test
    /// can take down).
    pub publisher_url: Option<String>,
    /// Sites registered once the stack is up, each with its settings as JSON (through the
    /// service's own admin API, as `liveuser sites add` does).
    pub sites: Vec<(String, String)>,
}

impl Default for StackOptions {
    /// Per-client limits raised out of the way: tests and benchmarks open thousands of
    /// sockets, visits and reads from one address. A test of the limits sets its own.
    fn default() -> Self {
        let config = [
            ("max_sockets_per_client", "1000"),
            ("max_visits_per_client_hour", "1000000"),
            ("max_api_reads_per_client_minute", "1000000"),
            ("max_new_presences_per_network_minute", "1000000"),
        ];
        StackOptions {
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            no_admin_token: false,
            secrets: Vec::new(),
            fastly_api_url: None,
            publisher_url: None,
            sites: Vec::new(),
        }
    }
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

    pub fn with_publisher(mut self, url: &str) -> Self {
        self.publisher_url = Some(url.to_string());
        self
    }

    pub fn without_admin_token(mut self) -> Self {
        self.no_admin_token = true;
        self
    }

    /// Registers `site` with `settings` (`{"minCount": 3}`, …) once the stack is up.
    pub fn with_site(mut self, site: &str, settings: &str) -> Self {
        self.sites.push((site.to_string(), settings.to_string()));
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
    /// The issuer this stack's Pushpin signs as (the project's local setting).
    pub grip_issuer: String,
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
        let grip_issuer = Manifest::read(&project_root().join("fastly.toml"))
            .config("grip_hs256_issuer")
            .unwrap_or(liveuser_edge::platform::config::DEFAULT_HS256_ISSUER)
            .to_string();
        let mut stack = Stack {
            grip_issuer,
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
        stack.register_sites();
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
            .replace("@SIG_KEY@", &self.grip_key)
            .replace("@SIG_ISS@", &self.grip_issuer);
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

    /// The project's fastly.toml with this stack's ports, key and config values, edited as
    /// TOML.
    fn fastly_toml(&self) -> String {
        let mut m = Manifest::read(&project_root().join("fastly.toml"));
        m.set_backend_url(
            FANOUT_BACKEND,
            &format!("http://127.0.0.1:{}", self.app_port),
        );
        let publisher = self.options.publisher_url.clone();
        m.set_backend_url(
            LOCAL_PUBLISH_BACKEND,
            &publisher.unwrap_or_else(|| format!("http://127.0.0.1:{}", self.publish_port)),
        );
        m.set_secret(GRIP_KEY_SECRET, &self.grip_key);
        if self.options.no_admin_token {
            m.remove_secret(ADMIN_TOKEN_SECRET);
        } else {
            m.set_secret(ADMIN_TOKEN_SECRET, &self.admin_token);
        }
        for (key, value) in &self.options.config {
            m.set_config(key, value);
        }
        for (key, value) in &self.options.secrets {
            m.set_secret(key, value);
        }
        if let Some(url) = &self.options.fastly_api_url {
            m.set_backend_url(FASTLY_API_BACKEND, url);
        }
        m.to_string()
    }

    /// The WebSocket URL for `query` (e.g. `siteId=a`).
    /// Registers the options' sites through the admin API.
    fn register_sites(&self) {
        let auth = format!("Bearer {}", self.admin_token);
        for (site, settings) in &self.options.sites {
            let path = format!("/admin/sites/{site}");
            let resp = self.http(
                "PUT",
                &path,
                &[("authorization", &auth)],
                settings.as_bytes(),
            );
            assert_eq!(resp.status, 200, "registering {site}: {}", resp.text());
        }
    }

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
        let sig = hs256_token(self.grip_key.as_bytes(), &self.grip_issuer, 4_000_000_000);
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

    /// The resident memory (KiB) of each process of the stack: Viceroy, Pushpin's runner and
    /// the services it started (read from their pid files).
    pub fn memory_kib(&self) -> Vec<(String, u64)> {
        let mut processes = Vec::new();
        if let Some(viceroy) = &self.viceroy {
            processes.push(("viceroy".to_string(), viceroy.id()));
        }
        if let Some(pushpin) = &self.pushpin {
            processes.push(("pushpin".to_string(), pushpin.id()));
        }
        for entry in fs::read_dir(self.dir.join("run"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string);
            let pid = fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            if let (Some(name), Some(pid), Some("pid")) =
                (name, pid, path.extension().and_then(|e| e.to_str()))
            {
                processes.push((name, pid));
            }
        }
        processes
            .into_iter()
            .filter_map(|(name, pid)| resident_kib(pid).map(|kib| (name, kib)))
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

/// A process's resident set size, from /proc.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
