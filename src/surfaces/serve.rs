//! What `main` does with one request once the host services exist: admit a WebSocket upgrade
//! (or refuse it), or answer the request, log what it cost, then run the broadcast it won and
//! check the site's webhooks against its count.
//! Here rather than in `main`, so it is tested natively with fakes.

use http::{Request, Response};

use crate::count::limits::{self, ClientKey, SocketAdmission, Verdict};
use crate::count::{automated, broadcast, hooks, registry};
use crate::platform::kv::{CountingKv, KvCounts};
use crate::platform::log::{Line, Log, RequestCost};
use crate::platform::publisher::CountingPublisher;
use crate::platform::Services;
use crate::surfaces::{handoff, params, router};
use crate::wire::error::HttpError;
use crate::wire::response;
use crate::wire::site::SiteId;

/// What to do with a browser's WebSocket upgrade.
#[derive(Debug)]
pub enum Upgrade {
    /// Hand it to Fanout with these headers set (after dropping any the client sent of the
    /// same names, and any `Meta-*`): the client's key and the socket ticket it took, which
    /// Fanout passes on with the OPEN. Should the handoff fail, [`handoff_failed`] gives the
    /// ticket back.
    HandOff {
        headers: Vec<(&'static str, String)>,
        ticket: Option<Ticket>,
    },
    /// Refuse it with this response (already logged).
    Refuse(Response<Vec<u8>>),
}

/// What the handoff reads of a browser's upgrade.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeRequest<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// The client's network address (for its per-client limits; never stored).
    pub address: Option<&'a str>,
    /// Its `User-Agent` (to leave crawlers uncounted; never stored).
    pub user_agent: Option<&'a str>,
    /// The country Fastly's geolocation places the address in (see `country::code`).
    pub country: Option<&'a str>,
}

/// Decides a browser's WebSocket upgrade. A bad `siteId`, a site the registry does not list,
/// or a foreign origin is refused here, before Fanout, the store or any channel is involved
/// (OPEN checks them again: that is the authoritative check). A client (`address`) that
/// already holds its share of sockets on the site is refused with 429; otherwise it takes a
/// socket ticket, which its connection gives back when it closes. A crawler or automated
/// browser (see `automated`) is handed off marked uncounted: it sees the count, it is not in it.
pub fn upgrade(services: &Services, req: &UpgradeRequest) -> Upgrade {
    let (path, query, origin, address) = (req.path, req.query, req.origin, req.address);
    // An owner's dashboard stream: its signed link is all it needs (no presence, no ticket).
    if crate::surfaces::dashboard::is_live(path) {
        return match crate::surfaces::dashboard::check_upgrade(services, path, query) {
            Ok(()) => Upgrade::HandOff {
                headers: Vec::new(),
                ticket: None,
            },
            Err(error) => Upgrade::Refuse(refuse(services.log, path, &error)),
        };
    }
    let checked = params::connect_params(services, query).and_then(|params| {
        let entry = registry::check_site(services, &params.site)?;
        registry::check_origin(&entry, &params.site, origin)?;
        Ok(params.site)
    });
    let site = match checked {
        Ok(site) => site,
        Err(error) => return Upgrade::Refuse(refuse(services.log, path, &error)),
    };
    let mut headers = Vec::new();
    if let Some(country) = crate::count::country::code(req.country) {
        headers.push((handoff::COUNTRY_HEADER, country));
    }
    let uncounted = !services.config.count_automated && automated::is_automated(req.user_agent);
    if uncounted {
        services.log.emit(&Line::Uncounted { site: &site });
        headers.push((handoff::UNCOUNTED_HEADER, "1".to_string()));
    }
    let Some(address) = address else {
        return Upgrade::HandOff {
            headers,
            ticket: None,
        };
    };
    let now_ms = services.clock.now_ms();
    let client = limits::client_key(
        services.secrets,
        services.cache,
        services.ids,
        now_ms,
        address,
    );
    let ttl_ms = limits::socket_ticket_ttl_ms(services.config);
    let limits = &services.config.limits;
    match limits::take_socket(services.cache, limits, &site, &client, ttl_ms) {
        // A counted reader starts a presence: its network starts only so many a minute.
        SocketAdmission::Ticket(n)
            if !uncounted
                && limits::take_new_presence(services.cache, limits, &site, &client, now_ms)
                    == Verdict::Over =>
        {
            limits::release_socket(services.cache, &site, &client, n);
            services.log.emit(&Line::PresenceLimited { site: &site });
            let error = HttpError::TooMany {
                what: "new readers of this site from your network",
                retry_after_secs: limits::api_retry_after_secs(now_ms),
            };
            Upgrade::Refuse(refuse(services.log, path, &error))
        }
        SocketAdmission::Ticket(n) => {
            headers.push((handoff::CLIENT_HEADER, client.as_str().to_string()));
            headers.push((handoff::TICKET_HEADER, n.to_string()));
            Upgrade::HandOff {
                headers,
                ticket: Some(Ticket { site, client, n }),
            }
        }
        SocketAdmission::Unchecked => {
            services
                .log
                .emit(&Line::LimitUnchecked { limit: "sockets" });
            Upgrade::HandOff {
                headers,
                ticket: None,
            }
        }
        SocketAdmission::Full => {
            services.log.emit(&Line::SocketLimited { site: &site });
            let error = HttpError::TooMany {
                what: "open connections to this site",
                // A socket ticket frees when one of the client's sockets closes.
                retry_after_secs: 30,
            };
            Upgrade::Refuse(refuse(services.log, path, &error))
        }
    }
}

/// A socket ticket taken at the handoff.
#[derive(Debug)]
pub struct Ticket {
    site: SiteId,
    client: ClientKey,
    n: u32,
}

/// Gives back the ticket of an upgrade whose handoff failed (no connection will).
pub fn handoff_failed(services: &Services, ticket: Option<Ticket>) {
    if let Some(t) = ticket {
        limits::release_socket(services.cache, &t.site, &t.client, t.n);
    }
}

/// Logs a refused upgrade and builds its response.
fn refuse(log: &dyn Log, path: &str, error: &HttpError) -> Response<Vec<u8>> {
    log.emit(&Line::Error {
        method: "GET",
        path,
        error,
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
    response::error(error)
}

/// Answers one request, sends the response with `send`, logs what it cost, then runs the
/// broadcast it won, if any.
pub fn request(
    services: &Services,
    method: &str,
    path: &str,
    request: &Request<Vec<u8>>,
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
    let handled = router::handle(request, &counted);
    let status = handled.response.status().as_u16();
    send(handled.response);
    // One compact line per request, so tests and benchmarks can count what each event cost.
    services.log.emit(&Line::Request {
        method,
        path: router::loggable_path(path),
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
        broadcast::log(
            services.log,
            &plan,
            &outcome,
            broadcast::cost(before, kv.counts()),
            publisher.count() - published_before,
            services.clock.now_ms().saturating_sub(plan.slot_end_ms),
        );
        // Published and stored: now the site's webhooks, whose deliveries (and their retries)
        // keep nobody waiting.
        if let Ok(broadcast::Outcome::Counted(counted_slot)) = &outcome {
            hooks::after_count(&counted, &plan.site, counted_slot.count, plan.slot_end_ms);
        }
    }
}

// The tests mint Grip-Sig tokens with the testkit (native only).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::platform::testing::{TestServices, TEST_GRIP_KEY};
    use crate::surfaces::websocket::connection;
    use liveuser_testkit::jwt::hs256_token;

    /// An upgrade of `/ws` from a browser at `address`.
    fn ws<'a>(query: Option<&'a str>, address: Option<&'a str>) -> UpgradeRequest<'a> {
        UpgradeRequest {
            path: "/ws",
            query,
            address,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"),
            ..UpgradeRequest::default()
        }
    }

    /// A WebSocket-over-HTTP call of connection `c1` on `shop`, signed as Pushpin signs them.
    fn signed_call() -> http::request::Builder {
        let token = hs256_token(TEST_GRIP_KEY, "pushpin", 1_800_000_000 + 60);
        Request::builder()
            .method("POST")
            .uri("/ws?siteId=shop")
            .header("Content-Type", "application/websocket-events")
            .header("Connection-Id", "c1")
            .header("Grip-Sig", token)
    }

    #[test]
    fn a_crawler_is_handed_off_uncounted_unless_the_service_counts_them() {
        let mut t = TestServices::new();
        let bot = UpgradeRequest {
            user_agent: Some("Mozilla/5.0 (compatible; Googlebot/2.1)"),
            ..ws(Some("siteId=shop"), None)
        };
        let marked = |u: Upgrade| match u {
            Upgrade::HandOff { headers, .. } => headers
                .iter()
                .any(|(n, v)| *n == handoff::UNCOUNTED_HEADER && v == "1"),
            Upgrade::Refuse(_) => panic!("refused"),
        };
        assert!(marked(upgrade(&t.services(), &bot)));
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l == "liveuser uncounted site=shop"));
        assert!(
            !t.log.lines().iter().any(|l| l.contains("Googlebot")),
            "never logged"
        );
        assert!(!marked(upgrade(
            &t.services(),
            &ws(Some("siteId=shop"), None)
        )));
        t.config.count_automated = true;
        assert!(!marked(upgrade(&t.services(), &bot)));
    }

    fn refused_status(upgrade: Upgrade) -> Option<u16> {
        match upgrade {
            Upgrade::Refuse(r) => Some(r.status().as_u16()),
            Upgrade::HandOff { .. } => None,
        }
    }

    #[test]
    fn a_bad_upgrade_is_refused_and_logged_before_the_handoff() {
        let t = TestServices::new();
        let s = t.services();
        let refused = upgrade(&s, &ws(Some("siteId=a%20b"), None));
        assert_eq!(refused_status(refused), Some(400));
        let lines = t.log.lines();
        assert!(lines[0].starts_with("liveuser error method=GET path=/ws status=400"));
        assert!(lines[1].starts_with("liveuser request method=GET path=/ws status=400 kv_lookup=0"));
        assert_eq!(
            refused_status(upgrade(&s, &ws(Some("siteId=a"), None))),
            None
        );
    }

    #[test]
    fn a_48_starts_only_its_share_of_readers_a_minute_however_many_64s_it_uses() {
        let mut t = TestServices::new();
        t.config.limits.new_presences_per_minute = 3;
        let now = 1_800_000_000_000;
        t.set_time(now);
        let from = |t: &TestServices, address: &str, agent: &'static str| {
            let req = UpgradeRequest {
                user_agent: Some(agent),
                ..ws(Some("siteId=shop"), Some(address))
            };
            refused_status(upgrade(&t.services(), &req))
        };
        const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0";
        let statuses: Vec<_> = (0..5u32)
            .map(|n| from(&t, &format!("2001:db8:9:{n:x}::1"), BROWSER))
            .collect();
        assert_eq!(statuses, vec![None, None, None, Some(429), Some(429)]);
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l == "liveuser presence-limited site=shop"));
        // A crawler starts no presence; another /48 is unaffected; so is the next minute.
        assert_eq!(from(&t, "2001:db8:9:7::1", "Googlebot/2.1"), None);
        assert_eq!(from(&t, "2001:db8:a::1", BROWSER), None);
        t.set_time(now + 60_000);
        assert_eq!(from(&t, "2001:db8:9:8::1", BROWSER), None);
        // The refused upgrades gave their socket tickets back.
        t.config.limits.new_presences_per_minute = 100;
        t.config.limits.sockets_per_site = 1;
        t.set_time(now + 1_000);
        assert_eq!(from(&t, "2001:db8:9:3::1", BROWSER), None);
    }

    #[test]
    fn a_client_holds_its_share_of_sockets_and_no_more_and_gets_one_back_on_close() {
        let mut t = TestServices::new();
        t.config.limits.sockets_per_site = 2;
        t.set_time(1_800_000_000_000);
        let s = t.services();
        let take = |address: &str| upgrade(&s, &ws(Some("siteId=shop"), Some(address)));
        let Upgrade::HandOff { headers, .. } = take("192.0.2.1") else {
            panic!("the first socket is handed off");
        };
        assert_eq!(headers[0].0, handoff::CLIENT_HEADER);
        assert_eq!(headers[0].1.len(), 32, "a key, not the address");
        assert_eq!(headers[1], (handoff::TICKET_HEADER, "0".to_string()));
        assert!(matches!(take("192.0.2.1"), Upgrade::HandOff { .. }));
        let Upgrade::Refuse(refused) = take("192.0.2.1") else {
            panic!("the third socket is refused");
        };
        assert_eq!(refused.status(), 429);
        assert_eq!(
            refused.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"30"[..])
        );
        assert!(t
            .log
            .lines()
            .iter()
            .any(|l| l == "liveuser socket-limited site=shop"));
        // Another client, or another site, is unaffected.
        assert!(matches!(take("192.0.2.2"), Upgrade::HandOff { .. }));
        assert!(matches!(
            upgrade(&s, &ws(Some("siteId=blog"), Some("192.0.2.1"))),
            Upgrade::HandOff { .. }
        ));
        // The first socket opens and closes: its ticket is free again.
        let call = |body: &[u8], meta: &[(&str, &str)]| {
            let mut b = signed_call()
                .header(handoff::CLIENT_HEADER, &headers[0].1)
                .header(handoff::TICKET_HEADER, "0");
            for (k, v) in meta {
                b = b.header(format!("Meta-{k}"), *v);
            }
            b.body(body.to_vec()).expect("request")
        };
        let opened = crate::surfaces::router::handle(&call(b"OPEN\r\n", &[]), &s).response;
        let meta = |name: &str| {
            opened
                .headers()
                .get(format!("Set-Meta-{name}"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(meta(connection::META_CLIENT), headers[0].1);
        assert_eq!(meta(connection::META_TICKET), "0");
        let (site, id, exp, client) = (
            meta(connection::META_SITE),
            meta(connection::META_PRESENCE_ID),
            meta(connection::META_PRESENCE_WINDOWS),
            meta(connection::META_CLIENT),
        );
        let closing = [
            (connection::META_SITE, site.as_str()),
            (connection::META_PRESENCE_ID, id.as_str()),
            (connection::META_PRESENCE_WINDOWS, exp.as_str()),
            (connection::META_CLIENT, client.as_str()),
            (connection::META_TICKET, "0"),
        ];
        let closed =
            crate::surfaces::router::handle(&call(b"DISCONNECT\r\n", &closing), &s).response;
        // The ticket is cleared from the connection's meta: nothing later gives it back twice.
        assert_eq!(
            closed
                .headers()
                .get("Set-Meta-Ticket")
                .map(|v| v.as_bytes()),
            Some(&b""[..])
        );
        t.set_time(1_800_000_000_010);
        assert!(matches!(take("192.0.2.1"), Upgrade::HandOff { .. }));
        assert!(refused_status(take("192.0.2.1")).is_some());
    }

    #[test]
    fn a_ticket_comes_back_when_its_open_is_refused_or_its_handoff_fails() {
        let mut t = TestServices::new();
        t.config.limits.sockets_per_site = 1;
        t.set_time(1_800_000_000_000);
        let s = t.services();
        let take = || upgrade(&s, &ws(Some("siteId=shop"), Some("192.0.2.1")));
        let Upgrade::HandOff { headers, ticket } = take() else {
            panic!("the first socket is handed off");
        };
        handoff_failed(&s, ticket);
        t.set_time(1_800_000_000_001);
        assert!(
            matches!(take(), Upgrade::HandOff { .. }),
            "a failed handoff frees it"
        );
        // The store is down: OPEN is refused with 503, and the ticket freed.
        let down = crate::platform::testing::Down;
        let without_store = Services { kv: &down, ..s };
        let open = signed_call()
            .header(handoff::CLIENT_HEADER, &headers[0].1)
            .header(handoff::TICKET_HEADER, "0")
            .body(b"OPEN\r\n".to_vec())
            .expect("request");
        let refused = crate::surfaces::router::handle(&open, &without_store).response;
        assert_eq!(refused.status(), 503);
        t.set_time(1_800_000_000_002);
        assert!(
            matches!(take(), Upgrade::HandOff { .. }),
            "a refused OPEN frees it"
        );
    }

    #[test]
    fn a_request_is_answered_then_logged_with_its_cost_then_its_broadcast_runs() {
        let t = TestServices::new();
        t.set_time(1_800_000_000_000);
        let open = signed_call().body(b"OPEN\r\n".to_vec()).expect("request");
        let mut sent = Vec::new();
        request(&t.services(), "POST", "/ws", &open, &mut |r| {
            sent.push(r.status())
        });
        assert_eq!(sent, vec![200]);
        let lines = t.log.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        // (The lookup: the site's registry entry, read once in a while per POP.)
        assert!(lines[0].starts_with("liveuser request method=POST path=/ws status=200 kv_lookup=1 kv_insert=2 kv_delete=0 kv_list=0 publish=0"), "{}", lines[0]);
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
    fn a_site_s_webhook_hears_of_a_crossing_after_the_broadcast_has_published() {
        let t = TestServices::new();
        t.set_time(1_800_000_000_000);
        let new = hooks::NewHook {
            url: "https://hooks.example/live".into(),
            above: 1,
            hysteresis: 0,
        };
        let site = crate::wire::site::SiteId::parse("shop").expect("site");
        hooks::settings::add(&t.services(), &site, &new).expect("added");
        let open = signed_call().body(b"OPEN\r\n".to_vec()).expect("request");
        request(&t.services(), "POST", "/ws", &open, &mut |_| {});
        let lines = t.log.lines();
        let kinds: Vec<&str> = lines
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap_or_default())
            .collect();
        assert_eq!(kinds, ["request", "broadcast", "webhook"]);
        assert!(
            lines[2].contains("event=online.above crossing=1 count=1 attempts=1 result=delivered"),
            "{}",
            lines[2]
        );
        assert_eq!(t.outbound.sent.borrow().len(), 1);
    }
}
