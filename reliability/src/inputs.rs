//! Generated inputs for each parser that takes input from outside: the WebSocket-over-HTTP
//! codec, the client-message parser, the Grip-Sig verifier and the loader's parameter checks.
//! Each input's outcome must be a value or a clear error (one that says what was wrong and
//! maps to a 4xx or a close code); a panic, or a value that breaks the parser's promise, is
//! a violation.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use liveuser_edge::platform::config::Config;
use liveuser_edge::surfaces::loader;
use liveuser_edge::wire::error::HttpError;
use liveuser_edge::wire::grip_sig::GripVerifier;
use liveuser_edge::wire::protocol::{self, ClientMessage};
use liveuser_edge::wire::websocket_events::{self, Event};
use liveuser_testkit::jwt;

use crate::mutate::Mutator;

/// What one input came to.
enum Outcome {
    Value,
    /// A clear error, by kind.
    Error(String),
    /// Neither: what went wrong.
    Violation(String),
}

/// The figure for one parser.
#[derive(Debug, Clone)]
pub struct InputFigure {
    pub target: &'static str,
    pub inputs: u64,
    pub values: u64,
    pub errors: u64,
    pub panics: u64,
    pub violations: u64,
    /// Errors by kind, most frequent first.
    pub error_kinds: Vec<(String, u64)>,
    /// The first panic or violation, with its input (escaped).
    pub first_problem: Option<String>,
    pub seconds: f64,
}

impl InputFigure {
    pub fn holds(&self) -> bool {
        self.panics == 0 && self.violations == 0 && self.values + self.errors == self.inputs
    }
}

/// Feeds `n` inputs made by `make` to `judge`, catching panics.
fn run<I: std::fmt::Debug>(
    target: &'static str,
    n: u64,
    seed: u64,
    make: impl Fn(&Mutator) -> I,
    judge: impl Fn(&I) -> Outcome,
) -> InputFigure {
    let m = Mutator::new(seed);
    let started = Instant::now();
    let mut figure = InputFigure {
        target,
        inputs: n,
        values: 0,
        errors: 0,
        panics: 0,
        violations: 0,
        error_kinds: Vec::new(),
        first_problem: None,
        seconds: 0.0,
    };
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    // Panics are counted, not printed a million times.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    for _ in 0..n {
        let input = make(&m);
        let problem = match panic::catch_unwind(AssertUnwindSafe(|| judge(&input))) {
            Ok(Outcome::Value) => {
                figure.values += 1;
                None
            }
            Ok(Outcome::Error(kind)) => {
                figure.errors += 1;
                *kinds.entry(kind).or_default() += 1;
                None
            }
            Ok(Outcome::Violation(why)) => {
                figure.violations += 1;
                Some(why)
            }
            Err(_) => {
                figure.panics += 1;
                Some("panic".to_string())
            }
        };
        if let (Some(why), None) = (problem, &figure.first_problem) {
            let why: String = why.chars().take(300).collect();
            let shown: String = format!("{input:?}").chars().take(300).collect();
            figure.first_problem = Some(format!("{why}: {shown}"));
        }
    }
    panic::set_hook(hook);
    figure.seconds = started.elapsed().as_secs_f64();
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    figure.error_kinds = kinds;
    figure
}

/// An error is clear when it says something and maps to a 4xx.
fn clear(error: &HttpError) -> Outcome {
    if error.to_string().trim().is_empty() || !(400..500).contains(&error.status()) {
        return Outcome::Violation(format!("unclear error {error:?} ({})", error.status()));
    }
    Outcome::Error(error.code().to_string())
}

// ---- The WebSocket-over-HTTP codec ----

fn random_event(m: &Mutator) -> Event {
    match m.below(7) {
        0 => Event::Open,
        1 => Event::Text(m.text(64)),
        2 => Event::Binary(m.bytes(m.below(32))),
        3 => Event::Ping(m.bytes(m.below(8))),
        4 => Event::Pong(m.bytes(m.below(8))),
        5 => Event::Close {
            code: m.chance(0.8).then(|| m.rng.next_u64() as u16),
            reason: m.text(16),
        },
        _ => Event::Disconnect,
    }
}

fn random_batch(m: &Mutator) -> Vec<u8> {
    let events: Vec<Event> = (0..m.below(5)).map(|_| random_event(m)).collect();
    websocket_events::encode(&events)
}

/// A generated body: a valid batch (a third), a broken one, or noise.
fn codec_input(m: &Mutator) -> Vec<u8> {
    let valid = random_batch(m);
    match m.below(20) {
        0..=6 => valid,
        7 => m.bytes(m.below(64)),
        _ => {
            let others = [random_batch(m), random_batch(m)];
            m.mutate(valid, &others)
        }
    }
}

fn judge_codec(body: &[u8]) -> Outcome {
    match websocket_events::parse(body) {
        // A parsed batch must say the same when encoded and parsed again. The encoding is
        // canonical and can be longer than what was parsed (a `BINARY` with no content is
        // written `BINARY 0`), so a batch whose encoding passes the body limit is checked
        // event by event.
        Ok(events) => {
            let encoded = websocket_events::encode(&events);
            let batches: Vec<Vec<Event>> = if encoded.len() <= websocket_events::MAX_BODY_BYTES {
                vec![events]
            } else {
                events.into_iter().map(|e| vec![e]).collect()
            };
            for batch in batches {
                match websocket_events::parse(&websocket_events::encode(&batch)) {
                    Ok(again) if again == batch => {}
                    other => {
                        return Outcome::Violation(format!(
                            "round trip changed {batch:?} into {other:?}"
                        ))
                    }
                }
            }
            Outcome::Value
        }
        Err(e) => clear(&HttpError::from(e)),
    }
}

pub fn codec(n: u64, seed: u64) -> InputFigure {
    run(
        "WebSocket-over-HTTP codec (`websocket_events::parse`)",
        n,
        seed,
        codec_input,
        |body| judge_codec(body),
    )
}

// ---- The client-message parser ----

fn random_message(m: &Mutator) -> Vec<u8> {
    let kind = *m.pick(&["join", "heartbeat", "visit", "page", "update", "", "JOIN"]);
    let mut fields = vec![format!(r#""type":{}"#, serde_json::json!(kind))];
    if m.chance(0.3) {
        fields.push(format!(r#""page":{}"#, serde_json::json!(m.text(40))));
    }
    if m.chance(0.7) {
        fields.push(format!(r#""siteId":{}"#, serde_json::json!(m.text(20))));
    }
    if m.chance(0.5) {
        fields.push(format!(r#""clientId":{}"#, serde_json::json!(m.text(20))));
    }
    if m.chance(0.5) {
        fields.push(format!(
            r#""timestamp":{}"#,
            m.rng.next_u64() >> m.below(64)
        ));
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// A text frame's payload: the codec hands the parser valid UTF-8 only.
fn message_input(m: &Mutator) -> String {
    let valid = random_message(m);
    let bytes = if m.chance(0.3) {
        valid
    } else {
        let others = [random_message(m), b"[]".to_vec(), b"\"join\"".to_vec()];
        m.mutate(valid, &others)
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

fn judge_message(text: &str) -> Outcome {
    match protocol::parse(text) {
        Ok(ClientMessage::Join { .. } | ClientMessage::Heartbeat | ClientMessage::Visit) => {
            Outcome::Value
        }
        Ok(ClientMessage::Unknown { kind }) if kind.len() <= text.len() => Outcome::Value,
        Ok(ClientMessage::Page { page: None }) => Outcome::Value,
        // A page name goes on to `page::id`: an id, or a 400 the socket closes with as 1007.
        Ok(ClientMessage::Page { page: Some(page) }) if page.len() <= text.len() => {
            let site =
                liveuser_edge::wire::site::SiteId::parse("reliability").expect("a valid site");
            let secrets = std::collections::HashMap::from([(
                liveuser_edge::platform::fastly_toml::GRIP_KEY_SECRET.to_string(),
                b"reliability".to_vec(),
            )]);
            match liveuser_edge::count::page::id(&secrets, &site, &page) {
                Ok(id) if liveuser_edge::count::page::is_page_id(&id) => Outcome::Value,
                Ok(id) => Outcome::Violation(format!("page id {id:?}")),
                Err(e) => clear(&e),
            }
        }
        Ok(other) => Outcome::Violation(format!("{other:?}")),
        // Each refusal closes the socket with its code: 1009 too big, 1007 otherwise.
        Err(e) if e.to_string().trim().is_empty() => Outcome::Violation(format!("{e:?}")),
        Err(protocol::ProtocolError::TooBig { .. }) => Outcome::Error("too_big (1009)".into()),
        Err(protocol::ProtocolError::MalformedJson(_)) => {
            Outcome::Error("malformed_json (1007)".into())
        }
        Err(protocol::ProtocolError::NotAnObject) => Outcome::Error("not_an_object (1007)".into()),
        Err(protocol::ProtocolError::BadField { .. }) => Outcome::Error("bad_field (1007)".into()),
    }
}

pub fn client_messages(n: u64, seed: u64) -> InputFigure {
    run(
        "client-message parser (`protocol::parse`)",
        n,
        seed,
        message_input,
        |text| judge_message(text),
    )
}

// ---- The Grip-Sig verifier ----

/// Now, for the verifiers (seconds).
pub const NOW_SECS: u64 = 1_800_000_000;
pub const HS256_KEY: &[u8] = b"reliability-hs256-key";
pub const ISSUER: &str = "fastly:reliability";

/// The two verifiers the service runs: HS256 (local) and ES256 (Fanout), with the ES256 key
/// that signs the genuine tokens.
pub struct Verifiers {
    pub hs256: GripVerifier,
    pub es256: GripVerifier,
    pub es256_key: p256::ecdsa::SigningKey,
}

impl Verifiers {
    pub fn new() -> Verifiers {
        let (es256_key, pem) = jwt::es256_key(7);
        Verifiers {
            hs256: GripVerifier::hs256(HS256_KEY, ISSUER),
            es256: GripVerifier::es256_pem(&pem, ISSUER).expect("a verifier"),
            es256_key,
        }
    }

    /// A genuine token, for verifier `es256` or not.
    pub fn genuine(&self, es256: bool, exp: u64) -> String {
        if es256 {
            jwt::es256_token(&self.es256_key, ISSUER, exp)
        } else {
            jwt::hs256_token(HS256_KEY, ISSUER, exp)
        }
    }

    pub fn verifier(&self, es256: bool) -> &GripVerifier {
        if es256 {
            &self.es256
        } else {
            &self.hs256
        }
    }
}

impl Default for Verifiers {
    fn default() -> Self {
        Verifiers::new()
    }
}

/// A token as it arrives: genuine, or broken; for the HS256 or the ES256 verifier.
#[derive(Debug)]
struct TokenInput {
    es256: bool,
    token: String,
    /// The genuine token it was made from.
    genuine: String,
}

fn token_input(m: &Mutator, v: &Verifiers, genuine_es256: &[String]) -> TokenInput {
    let es256 = m.chance(0.5);
    // ES256 signing is slow: broken ES256 tokens start from a few genuine ones.
    let genuine = if es256 {
        m.pick(genuine_es256).clone()
    } else {
        v.genuine(false, NOW_SECS + 1 + m.below(1000) as u64)
    };
    let token = if m.chance(0.1) {
        genuine.clone()
    } else {
        let others = [genuine.as_bytes().to_vec(), b"e30.e30.".to_vec()];
        let bytes = m.mutate(genuine.as_bytes().to_vec(), &others);
        String::from_utf8_lossy(&bytes).into_owned()
    };
    TokenInput {
        es256,
        token,
        genuine,
    }
}

/// The signature segment's bytes, decoded as leniently as the verifier does.
fn signature_bytes(token: &str) -> Option<Vec<u8>> {
    liveuser_edge::wire::grip_sig::decode_base64(token.rsplit('.').next()?)
}

fn judge_token(v: &Verifiers, input: &TokenInput) -> Outcome {
    match v.verifier(input.es256).verify(Some(&input.token), NOW_SECS) {
        // Accepted: it must be the genuine token, or the same one in another base64 dress
        // (the same signed part, the same signature bytes).
        Ok(()) => {
            let signed = |t: &str| t.rsplit_once('.').map(|(s, _)| s.to_string());
            let same = signed(&input.token) == signed(&input.genuine)
                && signature_bytes(&input.token) == signature_bytes(&input.genuine);
            if same {
                Outcome::Value
            } else {
                Outcome::Violation("a changed token was accepted".into())
            }
        }
        Err(e) if e.to_string().trim().is_empty() => Outcome::Violation(format!("{e:?}")),
        Err(e) => Outcome::Error(format!("{e:?}").split('(').next().unwrap_or("").to_string()),
    }
}

pub fn grip_sig(n: u64, seed: u64) -> InputFigure {
    let v = Verifiers::new();
    let genuine_es256: Vec<String> = (0..64).map(|i| v.genuine(true, NOW_SECS + 1 + i)).collect();
    run(
        "Grip-Sig verifier (`GripVerifier::verify`, HS256 and ES256)",
        n,
        seed,
        |m| token_input(m, &v, &genuine_es256),
        |input| judge_token(&v, input),
    )
}

// ---- The loader's parameter checks ----

const LOADER_PARAMS: &[&str] = &[
    "siteId",
    "serverUrl",
    "baseUrl",
    "displayElementId",
    "totalCountElementId",
    "enableTotalCount",
    "reconnectDelay",
    "debug",
    "countTabs",
    "page",
    "pageElementId",
];

fn random_query(m: &Mutator) -> Vec<u8> {
    let mut pairs = Vec::new();
    for _ in 0..m.below(6) {
        let name = *m.pick(LOADER_PARAMS);
        let value = match m.below(6) {
            0 => m.pick(&["true", "false", "1", "0", "yes"]).to_string(),
            1 => (m.rng.next_u64() >> m.below(64)).to_string(),
            2 => m
                .pick(&[
                    "wss://live.example",
                    "ws://x",
                    "javascript:alert(1)",
                    "https://evil.example/x.js",
                ])
                .to_string(),
            3 => format!("%{:02X}%{:02X}", m.below(256), m.below(256)),
            _ => m.text(24),
        };
        pairs.push(format!("{name}={value}"));
    }
    pairs.join("&").into_bytes()
}

fn query_input(m: &Mutator) -> String {
    let valid = random_query(m);
    let bytes = if m.chance(0.4) {
        valid
    } else {
        m.mutate(valid, &[random_query(m)])
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

fn judge_query(config: &Config, query: &str) -> Outcome {
    match loader::client_config(Some(query), "https://live.example", config) {
        Ok(c) => {
            // The configuration goes into a script: it must not be able to end the script
            // or break out of its JSON, and must read back as itself.
            let json = loader::script_json(&c);
            if json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
                return Outcome::Violation(format!("unsafe JSON {json}"));
            }
            // (It leaves out the client's own defaults: read back over them.)
            let mut back = loader::client_defaults().clone();
            match serde_json::from_str(&json) {
                Ok(serde_json::Value::Object(given)) => back.extend(given),
                _ => return Outcome::Violation(format!("JSON is no object: {json}")),
            }
            if Some(serde_json::Value::Object(back)) != serde_json::to_value(&c).ok() {
                return Outcome::Violation(format!("JSON does not read back: {json}"));
            }
            let url_ok = c.server_url.starts_with("ws://") || c.server_url.starts_with("wss://");
            if !url_ok || !loader::loader_body(&c).contains(&json) {
                return Outcome::Violation(format!("bad server URL or body: {c:?}"));
            }
            Outcome::Value
        }
        Err(e) => clear(&e),
    }
}

pub fn loader_params(n: u64, seed: u64) -> InputFigure {
    let config = Config::default();
    run(
        "loader parameter checks (`loader::client_config`, then the script JSON)",
        n,
        seed,
        query_input,
        |q| judge_query(&config, q),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_whose_canonical_encoding_passes_the_limit_is_still_a_value() {
        // `BINARY` with no content is written back as `BINARY 0`: longer than it came.
        let body = "BINARY\r\n".repeat(websocket_events::MAX_BODY_BYTES / 8);
        assert!(body.len() <= websocket_events::MAX_BODY_BYTES);
        let events = websocket_events::parse(body.as_bytes()).expect("parses");
        assert!(websocket_events::encode(&events).len() > websocket_events::MAX_BODY_BYTES);
        assert!(matches!(judge_codec(body.as_bytes()), Outcome::Value));
    }
}
