//! What `main` does with one request once the host services exist: admit a WebSocket upgrade
//! (or refuse it), or answer the request, log what it cost, then run the broadcast it won.
//! Here rather than in `main`, so it is tested natively with fakes.

use http::{Request, Response};

use crate::broadcast;
use crate::config::ConfigSource;
use crate::error::HttpError;
use crate::kv::{CountingKv, KvCounts};
use crate::log::{Line, Log, RequestCost};
use crate::publish::CountingPublisher;
use crate::response;
use crate::router;
use crate::websocket;
use crate::Services;

/// Whether a browser's WebSocket upgrade may be handed to Fanout. A bad `siteId` or a foreign
/// origin is refused here, before Fanout, the store or any channel is involved (OPEN checks
/// both again: that is the authoritative check); the refusal is logged and returned, to send
/// (`None`: hand it off).
pub fn refuse_upgrade(
    settings: &dyn ConfigSource,
    log: &dyn Log,
    path: &str,
    query: Option<&str>,
    origin: Option<&str>,
) -> Option<Response<Vec<u8>>> {
    let checked = websocket::connect_params(query)
        .and_then(|params| websocket::check_origin(settings, &params.site, origin));
    let Err(error) = checked else {
        return None;
    };
    log.emit(&Line::Error {
        method: "GET",
        path,
        error: &error,
    });
    log.emit(&Line::Request {
        method: "GET",
        path,
        cost: RequestCost {
            status: error.status(),
            ..RequestCost::default()
        },
        fields: "",
    });
    Some(response::error(&error))
}

/// Answers one request (`request` is the error to answer when it could not be read), sends
/// the response with `send`, logs what it cost, then runs the broadcast it won, if any.
pub fn request(
    services: &Services,
    method: &str,
    path: &str,
    request: Result<Request<Vec<u8>>, HttpError>,
    send: &mut dyn FnMut(Response<Vec<u8>>),
) {
    let kv = CountingKv::new(services.kv);
    let publisher = CountingPublisher::new(services.publisher);
    let counted = Services {
        kv: &kv,
        publisher: &publisher,
        ..*services
    };
    let started_ms = services.clock.now_ms();
    let handled = match request {
        Ok(req) => router::handle(&req, &counted),
        Err(error) => {
            services.log.emit(&Line::Error {
                method,
                path,
                error: &error,
            });
            response::error(&error).into()
        }
    };
    let status = handled.response.status().as_u16();
    send(handled.response);
    // One compact line per request, so tests and benchmarks can count what each event cost.
    services.log.emit(&Line::Request {
        method,
        path,
        cost: RequestCost {
            status,
            kv: kv.counts(),
            publishes: publisher.count(),
            ms: services.clock.now_ms().saturating_sub(started_ms),
        },
        fields: &handled.log_fields,
    });
    // The client has its answer; now the broadcast this request won, if any.
    if let Some(plan) = handled.broadcast {
        let before: KvCounts = kv.counts();
        let published_before = publisher.count();
        let outcome = broadcast::run(&counted, &plan);
        services.log.emit(&Line::Broadcast {
            plan: &plan,
            outcome: &outcome,
            kv: broadcast::cost(before, kv.counts()),
            publishes: publisher.count() - published_before,
            late_ms: services.clock.now_ms().saturating_sub(plan.slot_end_ms),
        });
    }
}

// The tests mint Grip-Sig tokens with the testkit (native only).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::testing::{TestServices, TEST_GRIP_KEY};
    use liveuser_testkit::jwt::hs256_token;

    #[test]
    fn a_bad_upgrade_is_refused_and_logged_before_the_handoff() {
        let t = TestServices::new();
        let refused = refuse_upgrade(&t.settings, &t.log, "/ws", Some("siteId=a%20b"), None)
            .expect("a bad site id is refused");
        assert_eq!(refused.status(), 400);
        let lines = t.log.lines();
        assert!(lines[0].starts_with("liveuser error method=GET path=/ws status=400"));
        assert!(lines[1].starts_with("liveuser request method=GET path=/ws status=400 kv_lookup=0"));
        assert!(refuse_upgrade(&t.settings, &t.log, "/ws", Some("siteId=a"), None).is_none());
    }

    #[test]
    fn a_request_is_answered_then_logged_with_its_cost_then_its_broadcast_runs() {
        let t = TestServices::new();
        t.set_time(1_800_000_000_000);
        let token = hs256_token(TEST_GRIP_KEY, "pushpin", 1_800_000_000 + 60);
        let open = Request::builder()
            .method("POST")
            .uri("/ws?siteId=shop")
            .header("Content-Type", "application/websocket-events")
            .header("Connection-Id", "c1")
            .header("Grip-Sig", token)
            .body(b"OPEN\r\n".to_vec())
            .expect("request");
        let mut sent = Vec::new();
        request(&t.services(), "POST", "/ws", Ok(open), &mut |r| {
            sent.push(r.status())
        });
        assert_eq!(sent, vec![200]);
        let lines = t.log.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("liveuser request method=POST path=/ws status=200 kv_lookup=0 kv_insert=1 kv_delete=0 kv_list=0 publish=0"), "{}", lines[0]);
        assert!(
            lines[0].ends_with("conn=c1 site=shop events=OPEN"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(
                "liveuser broadcast site=shop slot=1800000000500 reason=change count=1"
            ),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("result=ok"), "{}", lines[1]);
        assert_eq!(t.publisher.published.borrow().len(), 2);
    }

    #[test]
    fn a_request_that_could_not_be_read_gets_its_error() {
        let t = TestServices::new();
        let mut sent = Vec::new();
        request(
            &t.services(),
            "POST",
            "/ws",
            Err(HttpError::PayloadTooLarge { max: 10 }),
            &mut |r| sent.push(r.status()),
        );
        assert_eq!(sent, vec![413]);
        assert!(t.log.lines()[1].contains("status=413"));
    }
}
