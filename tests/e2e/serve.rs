//! Plain `fastly compute serve`, as a Fastly user runs it with no flags, serves WebSockets with
//! Fanout: the CLI starts Pushpin itself (through the project's 1.36 shim) and the Viceroy
//! `scripts/setup` placed where the CLI looks, and its Pushpin's Grip-Sig is the one the local
//! configuration verifies.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use liveuser_testkit::fleet::{connect_many, wait_for_count, PeerOptions};
use liveuser_testkit::paths::{fastly_cli, project_root};
use liveuser_testkit::process::{
    spawn, stop, wait_for_port, wait_for_port_closed, SIGINT, SIGTERM,
};

/// The ports `fastly compute serve` takes with the project's fastly.toml: the app, Pushpin's
/// proxy, and Pushpin's publish port and the three after it.
const PORTS: [u16; 6] = [7676, 7677, 5561, 5562, 5563, 5564];

#[test]
fn plain_fastly_compute_serve_serves_websockets_through_its_own_pushpin() {
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
        Command::new(fastly_cli())
            .args(["compute", "serve"])
            .current_dir(project_root()),
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

    // Ctrl-C stops everything the CLI started.
    stop(child, SIGINT);
    for port in PORTS {
        wait_for_port_closed(port);
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(output.contains("Pushpin started"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}
