//! Plain `fastly compute serve`, as a Fastly user runs it with no flags, serves WebSockets with
//! Fanout: the CLI starts Pushpin itself (through the project's 1.36 shim) and the Viceroy
//! `scripts/setup` placed where the CLI looks, and its Pushpin's Grip-Sig is the one the local
//! configuration verifies.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use liveuser_testkit::fleet::{connect_many, wait_for_count, PeerOptions};
use liveuser_testkit::paths::project_root;
use liveuser_testkit::process::{
    spawn, stop, wait_for_port, wait_for_port_closed, SIGINT, SIGTERM,
};

/// The ports `fastly compute serve` takes with the project's fastly.toml: the app, Pushpin's
/// proxy, and Pushpin's publish port and the three after it.
const PORTS: [u16; 6] = [7676, 7677, 5561, 5562, 5563, 5564];

/// `scripts/serve` (the README's first command: setup, then plain `fastly compute serve`), and
/// `scripts/liveuser` against it with no settings at all, as a newcomer runs them.
#[test]
fn scripts_serve_runs_plain_fastly_compute_serve_with_its_own_pushpin() {
    for port in PORTS {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is taken: stop whatever serves there (scripts/serve?) and run again"
        );
    }
    let dir = std::env::temp_dir().join(format!("lu-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    let log = dir.join("serve.log");
    let child = spawn(
        Command::new(project_root().join("scripts/serve")).current_dir(project_root()),
        &log,
        SIGTERM,
    );
    wait_for_port(7677, "the CLI's Pushpin");
    // The CLI builds first (quick: the test command built already), then starts Viceroy.
    wait_for_port(7676, "Viceroy, started by the CLI");

    let url = "ws://127.0.0.1:7676/ws?siteId=plain-serve";
    let peers = connect_many(url, "plain-serve", 2, &PeerOptions::default());
    let took = wait_for_count(&peers, 2, Duration::from_secs(30));
    println!("two sockets through plain `fastly compute serve` see 2 after {took:?}");
    drop(peers);

    // The owner's command finds the local stack and its development admin token by itself.
    let out = Command::new(project_root().join("scripts/liveuser"))
        .args(["sites", "add", "plain-serve", "--min-count", "2"])
        .env_remove("LIVEUSER_SERVICE")
        .env_remove("LIVEUSER_ADMIN_TOKEN")
        .current_dir(project_root())
        .output()
        .expect("scripts/liveuser runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("plain-serve: origins: any; privacy floor: 2"),
        "{said}"
    );

    // Ctrl-C stops everything the CLI started.
    stop(child, SIGINT);
    for port in PORTS {
        wait_for_port_closed(port);
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(output.contains("Pushpin started"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}
