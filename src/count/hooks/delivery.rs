//! A crossing's delivery: a signed POST to the hook's URL, tried at most [`ATTEMPTS`] times.
//! Every delivery a broadcast owes goes out at once, each attempt signed afresh (its timestamp
//! is the attempt's); a 2xx ends it, as does a 4xx other than 408 and 429 (the receiver refused
//! it: trying again would not change that); anything else, or no answer, is tried again after
//! [`BACKOFF_MS`]. With the request timeouts of `platform::outbound`, the whole takes at most
//! about 26 s, after the broadcast has published: no reader waits for it.

use crate::platform::Services;
use crate::wire::webhook;

/// How many times one delivery is tried, at most.
pub const ATTEMPTS: u32 = 3;
/// The wait before each attempt after the first.
pub const BACKOFF_MS: [u64; (ATTEMPTS - 1) as usize] = [1_000, 4_000];

/// One delivery owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub hook: String,
    pub url: String,
    pub secret: String,
    /// The delivery id (the same on every attempt).
    pub id: String,
    pub event: &'static str,
    pub crossing: u64,
    pub count: u64,
    pub body: String,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
    pub result: Result<u16, Failure>,
}

/// A delivery that did not get a 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The receiver answered a status not worth trying again.
    Refused(u16),
    /// Every attempt failed: the last status, or why there was none.
    GaveUp(String),
}

/// The signed request of one attempt at `t_secs`; `Err` when the URL cannot be a request's.
fn request(d: &Delivery, t_secs: u64) -> Result<http::Request<Vec<u8>>, String> {
    http::Request::builder()
        .method("POST")
        .uri(&d.url)
        .header("content-type", "application/json")
        .header("user-agent", "LiveUser-Webhooks/1")
        .header(webhook::EVENT_HEADER, d.event)
        .header(webhook::DELIVERY_HEADER, &d.id)
        .header(
            webhook::SIGNATURE_HEADER,
            webhook::signature(d.secret.as_bytes(), t_secs, d.body.as_bytes()),
        )
        .body(d.body.clone().into_bytes())
        .map_err(|e| e.to_string())
}

/// Whether a status ends the delivery.
fn settled(status: u16) -> bool {
    (200..500).contains(&status) && status != 408 && status != 429
}

/// Delivers every one of `deliveries`, all at once, attempt after attempt: what became of each.
pub fn deliver(services: &Services, deliveries: &[Delivery]) -> Vec<Delivered> {
    let mut done: Vec<Option<Delivered>> = vec![None; deliveries.len()];
    let mut last_error: Vec<String> = vec![String::new(); deliveries.len()];
    for attempt in 1..=ATTEMPTS {
        if done.iter().all(Option::is_some) {
            break;
        }
        if attempt > 1 {
            let wait = BACKOFF_MS[(attempt - 2) as usize];
            services.clock.sleep_until(services.clock.now_ms() + wait);
        }
        let t_secs = services.clock.now_secs();
        let mut sent = Vec::new();
        let mut requests = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            match request(d, t_secs) {
                Ok(req) => {
                    sent.push(i);
                    requests.push(req);
                }
                Err(e) => {
                    done[i] = Some(Delivered {
                        attempts: attempt - 1,
                        result: Err(Failure::GaveUp(e)),
                    })
                }
            }
        }
        if requests.is_empty() {
            break;
        }
        for (i, answer) in sent.into_iter().zip(services.outbound.send_all(requests)) {
            match answer {
                Ok(status) if (200..300).contains(&status) => {
                    done[i] = Some(Delivered {
                        attempts: attempt,
                        result: Ok(status),
                    })
                }
                Ok(status) if settled(status) => {
                    done[i] = Some(Delivered {
                        attempts: attempt,
                        result: Err(Failure::Refused(status)),
                    })
                }
                Ok(status) => last_error[i] = format!("status {status}"),
                Err(e) => last_error[i] = e.to_string(),
            }
        }
    }
    done.into_iter()
        .zip(last_error)
        .map(|(d, error)| {
            d.unwrap_or(Delivered {
                attempts: ATTEMPTS,
                result: Err(Failure::GaveUp(error)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::clock::Clock;
    use crate::platform::outbound::OutboundError;
    use crate::platform::testing::TestServices;

    fn delivery(id: &str) -> Delivery {
        Delivery {
            hook: "hk_1".into(),
            url: "https://hooks.example/live".into(),
            secret: "whsec_s".into(),
            id: id.into(),
            event: "online.above",
            crossing: 1,
            count: 10,
            body: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    #[test]
    fn a_delivery_is_signed_and_sent_once_when_the_receiver_takes_it() {
        let t = TestServices::new();
        t.set_time(1_700_000_000_250);
        let out = deliver(&t.services(), &[delivery("d1")]);
        assert_eq!(
            out,
            vec![Delivered {
                attempts: 1,
                result: Ok(204)
            }]
        );
        let sent = t.outbound.sent.borrow();
        assert_eq!(sent.len(), 1);
        let req = &sent[0];
        assert_eq!(req.uri(), "https://hooks.example/live");
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("liveuser-delivery"), "d1");
        assert_eq!(header("liveuser-event"), "online.above");
        assert_eq!(
            webhook::verify(
                b"whsec_s",
                &header("liveuser-signature"),
                req.body(),
                1_700_000_000,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn failures_are_retried_with_backoff_a_bounded_number_of_times() {
        let t = TestServices::new();
        t.set_time(1_000_000);
        // d1: 503, then no answer, then 200. d2: nothing but 503s. d3: refused with 400.
        t.outbound.answers.borrow_mut().extend([
            Ok(503),
            Ok(503),
            Ok(400),
            Err(OutboundError("connection refused".into())),
            Ok(503),
            Ok(200),
            Ok(503),
        ]);
        let out = deliver(
            &t.services(),
            &[delivery("d1"), delivery("d2"), delivery("d3")],
        );
        assert_eq!(
            out,
            vec![
                Delivered {
                    attempts: 3,
                    result: Ok(200)
                },
                Delivered {
                    attempts: 3,
                    result: Err(Failure::GaveUp("status 503".into()))
                },
                Delivered {
                    attempts: 1,
                    result: Err(Failure::Refused(400))
                },
            ]
        );
        assert_eq!(
            t.outbound.sent.borrow().len(),
            7,
            "3 + 3 + 1 attempts, no more"
        );
        // The two waits between attempts, and nothing more.
        assert_eq!(t.clock.now_ms(), 1_000_000 + 1_000 + 4_000);
        // Each attempt is signed at its own time; the delivery id stays.
        let sent = t.outbound.sent.borrow();
        let stamp = |i: usize| {
            sent[i].headers()["liveuser-signature"]
                .to_str()
                .unwrap_or_default()
                .split(',')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            (stamp(0), stamp(3), stamp(5)),
            ("t=1000".into(), "t=1001".into(), "t=1005".into())
        );
        assert_eq!(sent[5].headers()["liveuser-delivery"], "d1");
    }

    #[test]
    fn no_wait_follows_the_last_delivery_taken() {
        let t = TestServices::new();
        t.set_time(1_000_000);
        t.outbound.answers.borrow_mut().push_back(Ok(503));
        let out = deliver(&t.services(), &[delivery("d1")]);
        assert_eq!(out[0].attempts, 2);
        assert_eq!(t.clock.now_ms(), 1_000_000 + 1_000, "one wait, not two");
    }

    #[test]
    fn a_429_or_408_is_tried_again_and_a_410_is_not() {
        assert!(!settled(429) && !settled(408) && !settled(500) && !settled(503));
        assert!(settled(302), "a redirect is not followed");
        assert!(settled(410) && settled(400) && settled(204));
    }
}
