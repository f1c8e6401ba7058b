//! The Compute entry point: builds the host-backed services and hands the request to the
//! library. `fn main` with `Request::from_client()` (not `#[fastly::main]`) so that a
//! WebSocket upgrade can be handed off to Fanout.

#[cfg(target_arch = "wasm32")]
fn main() {
    use liveuser_edge::platform::host::{self, log::HostLog, HostServices};
    use liveuser_edge::surfaces::{handoff, router, serve};
    use liveuser_edge::wire::{grip, websocket_events};

    let log = HostLog::stdout();
    host::log::report_panics();
    let host_services = HostServices::open(&log);
    let services = host_services.services();
    let mut req = fastly::Request::from_client();
    let path = req.get_path().to_string();
    // Header values that are not UTF-8 read as absent (`get_header_str` would panic).
    let header = |name: &str| req.get_header(name).and_then(|v| v.to_str().ok());
    let signed = header(grip::SIGNATURE_HEADER).is_some();
    if router::wants_fanout_handoff(req.get_method(), &path, header("upgrade"), signed) {
        let ip = req.get_client_ip_addr();
        let address = ip.map(|ip| ip.to_string());
        // Only the country is read; the address goes no further than the limits' hash.
        let geo = ip.and_then(fastly::geo::geo_lookup);
        let country = geo.as_ref().map(|g| g.country_code());
        let upgrade = serve::UpgradeRequest {
            path: &path,
            query: req.get_query_str(),
            origin: header("origin"),
            address: address.as_deref(),
            user_agent: header("user-agent"),
            country,
        };
        match serve::upgrade(&services, &upgrade) {
            serve::Upgrade::HandOff { headers, ticket } => {
                // Only this service speaks for the client to its own handlers.
                host::remove_headers(&mut req, |name| {
                    name.starts_with("meta-")
                        || name.eq_ignore_ascii_case(handoff::CLIENT_HEADER)
                        || name.eq_ignore_ascii_case(handoff::TICKET_HEADER)
                        || name.eq_ignore_ascii_case(handoff::UNCOUNTED_HEADER)
                        || name.eq_ignore_ascii_case(handoff::COUNTRY_HEADER)
                });
                for (name, value) in headers {
                    req.set_header(name, value);
                }
                if !host::handoff(req, &log, &path) {
                    serve::handoff_failed(&services, ticket);
                }
            }
            serve::Upgrade::Refuse(refusal) => host::send(refusal),
        }
        return;
    }
    let method = req.get_method_str().to_string();
    let request = host::into_http_request(req, websocket_events::MAX_BODY_BYTES);
    serve::request(&services, &method, &path, &request, &mut host::send);
}

/// Native builds exist only for tests; the service itself runs as wasm.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("liveuser-edge runs on Fastly Compute: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
