//! The Compute entry point: builds the host-backed services and hands the request to the
//! library. `fn main` with `Request::from_client()` (not `#[fastly::main]`) so that a
//! WebSocket upgrade can be handed off to Fanout.

#[cfg(target_arch = "wasm32")]
fn main() {
    use liveuser_edge::error::HttpError;
    use liveuser_edge::host::{self, log::HostLog, HostServices};
    use liveuser_edge::{router, serve, websocket_events};

    let log = HostLog::stdout();
    host::log::report_panics();
    let host_services = HostServices::open(&log);
    let req = fastly::Request::from_client();
    let path = req.get_path().to_string();
    let upgrade = req.get_header_str("upgrade");
    if router::wants_fanout_handoff(req.get_method(), &path, upgrade) {
        let origin = req.get_header_str("origin");
        let settings = host_services.settings();
        match serve::refuse_upgrade(settings, &log, &path, req.get_query_str(), origin) {
            None => host::handoff(req, &log, &path),
            Some(refusal) => host::send(refusal),
        }
        return;
    }
    let method = req.get_method_str().to_string();
    let request = host::into_http_request(req, websocket_events::MAX_BODY_BYTES)
        .map_err(|max| HttpError::PayloadTooLarge { max });
    serve::request(
        &host_services.services(),
        &method,
        &path,
        request,
        &mut host::send,
    );
}

/// Native builds exist only for tests; the service itself runs as wasm.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("liveuser-edge runs on Fastly Compute: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
