//! The Compute entry point: builds the host-backed services and hands the request to the
//! library. `fn main` with `Request::from_client()` (not `#[fastly::main]`) so that a
//! WebSocket upgrade can be handed off to Fanout.

#[cfg(target_arch = "wasm32")]
fn main() {
    use fastly::Request;
    use liveuser_edge::clock::{Clock, SystemClock};
    use liveuser_edge::config::Config;
    use liveuser_edge::error::HttpError;
    use liveuser_edge::host::{
        self, cache::HostCache, config_store::HostConfig, kv::HostKv, HostSecrets,
    };
    use liveuser_edge::ids::OsRandom;
    use liveuser_edge::kv::{CountingKv, KvCounts};
    use liveuser_edge::publish::{self, CountingPublisher};
    use liveuser_edge::request_log::RequestCost;
    use liveuser_edge::secrets::Secrets;
    use liveuser_edge::{
        broadcast, fastly_toml, request_log, response, router, websocket, websocket_events,
        Services,
    };

    let req = Request::from_client();
    if router::wants_fanout_handoff(
        req.get_method(),
        req.get_path(),
        req.get_header_str("upgrade"),
    ) {
        let path = req.get_path().to_string();
        // Refuse a bad siteId or a foreign origin here, before Fanout, the store or any channel
        // is involved. (OPEN checks both again: that is the authoritative check.)
        let settings = HostConfig::open(fastly_toml::CONFIG_STORE);
        let checked = websocket::connect_params(req.get_query_str()).and_then(|params| {
            websocket::check_origin(&settings, &params.site, req.get_header_str("origin"))
        });
        if let Err(e) = checked {
            request_log::error("GET", &path, &e);
            let cost = RequestCost {
                status: e.status(),
                kv: KvCounts::default(),
                publishes: 0,
                ms: 0,
            };
            request_log::request("GET", &path, &cost, "");
            host::send(response::error(&e));
            return;
        }
        match req.handoff_fanout(fastly_toml::FANOUT_BACKEND) {
            Ok(()) => println!("liveuser handoff path={path}"),
            Err(e) => {
                println!(
                    "liveuser handoff-failed path={path} error={:?}",
                    e.root_cause().to_string()
                );
                let err = HttpError::Internal("WebSocket handoff to Fanout failed".into());
                host::send(response::error(&err));
            }
        }
        return;
    }

    let settings = HostConfig::open(fastly_toml::CONFIG_STORE);
    let (config, warnings) = Config::load(&settings);
    for w in warnings {
        println!(
            "liveuser config-warning key={} value={:?} reason={:?}",
            w.key, w.value, w.reason
        );
    }
    let clock = SystemClock;
    let started_ms = clock.now_ms();
    let host_kv = HostKv::open(fastly_toml::KV_STORE);
    let kv = CountingKv::new(&host_kv);
    let service_id = std::env::var("FASTLY_SERVICE_ID").unwrap_or_default();
    let target = publish::target(config.publish, &service_id);
    let host_publisher = host::publisher::BackendPublisher {
        backend: target.backend.to_string(),
        url: target.url,
        token: target
            .token_secret
            .and_then(|name| HostSecrets.get(name))
            .map(|t| String::from_utf8_lossy(&t).into_owned()),
    };
    let publisher = CountingPublisher::new(&host_publisher);
    let grip = host::grip_verifier(&config, &service_id);
    let services = Services {
        config: &config,
        publisher: &publisher,
        kv: &kv,
        cache: &HostCache,
        clock: &clock,
        ids: &OsRandom,
        grip: &grip,
        secrets: &HostSecrets,
        settings: &settings,
    };

    let method = req.get_method_str().to_string();
    let path = req.get_path().to_string();
    let handled = match host::into_http_request(req, websocket_events::MAX_BODY_BYTES) {
        Ok(req) => router::handle(&req, &services),
        Err(max) => response::error(&HttpError::PayloadTooLarge { max }).into(),
    };
    let status = handled.response.status().as_u16();
    host::send(handled.response);
    // One compact line per request, so tests and benchmarks can count what each event cost.
    let cost = RequestCost {
        status,
        kv: kv.counts(),
        publishes: publisher.count(),
        ms: clock.now_ms().saturating_sub(started_ms),
    };
    request_log::request(&method, &path, &cost, &handled.log_fields);

    // The client has its answer; now run the broadcast this request won, if any.
    if let Some(plan) = handled.broadcast {
        let before_kv = kv.counts();
        let before_publish = publisher.count();
        let outcome = broadcast::run(&services, &plan);
        request_log::broadcast(
            &plan,
            &outcome,
            broadcast::cost(before_kv, kv.counts()),
            publisher.count() - before_publish,
            clock.now_ms().saturating_sub(plan.slot_end_ms),
        );
    }
}

/// Native builds exist only for tests; the service itself runs as wasm.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("liveuser-edge runs on Fastly Compute: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
