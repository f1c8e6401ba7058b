//! The Compute entry point: builds the host-backed services and hands the request to the
//! library. `fn main` with `Request::from_client()` (not `#[fastly::main]`) so that a
//! WebSocket upgrade can be handed off to Fanout.

#[cfg(target_arch = "wasm32")]
fn main() {
    use fastly::Request;
    use liveuser_edge::config::{self, Config};
    use liveuser_edge::error::HttpError;
    use liveuser_edge::host::{self, config_store::HostConfig, publisher::BackendPublisher};
    use liveuser_edge::{response, router, websocket_events, Services};

    /// The backend Fanout hands WebSockets to: this service itself.
    const FANOUT_BACKEND: &str = "self";

    let req = Request::from_client();
    if router::wants_fanout_handoff(req.get_method(), req.get_path(), req.get_header_str("upgrade")) {
        let path = req.get_path().to_string();
        match req.handoff_fanout(FANOUT_BACKEND) {
            Ok(()) => println!("liveuser handoff path={path}"),
            Err(e) => {
                println!("liveuser handoff-failed path={path} error={:?}", e.root_cause().to_string());
                let err = HttpError::Internal("WebSocket handoff to Fanout failed".into());
                host::send(response::error(&err));
            }
        }
        return;
    }

    let (config, warnings) = Config::load(&HostConfig::open(config::STORE_NAME));
    for w in warnings {
        println!("liveuser config-warning key={} value={:?} reason={:?}", w.key, w.value, w.reason);
    }
    let publisher = BackendPublisher {
        backend: "publisher".into(),
        url: "http://127.0.0.1:5561/publish/".into(),
        token: None,
    };
    let services = Services {
        config: &config,
        publisher: &publisher,
    };
    let resp = match host::into_http_request(req, websocket_events::MAX_BODY_BYTES) {
        Ok(req) => router::handle(&req, &services),
        Err(max) => response::error(&HttpError::PayloadTooLarge { max }),
    };
    host::send(resp);
}

/// Native builds exist only for tests; the service itself runs as wasm.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("liveuser-edge runs on Fastly Compute: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
