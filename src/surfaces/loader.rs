//! The loader, `GET /liveuser.js`: the page's configuration and the client in one response.
//!
//! The original needs a second request (for init-liveuser.js) and splices its `baseUrl`
//! parameter into a script URL, so `?baseUrl=https://evil.example` loads foreign script. Here
//! every parameter is checked, the configuration is embedded as JSON (never spliced into code),
//! and nothing is loaded from anywhere: the client is in the same response.

use http::Request;
use serde::Serialize;

use crate::count::page;
use crate::platform::config::Config;
use crate::wire::error::HttpError;
use crate::wire::request::{self, parse_bool, query_value};
use crate::wire::site::SiteId;

/// What starts the client from `/liveuser.js`, and from `/init-liveuser.js`; each has
/// [`CONFIG_PLACEHOLDER`] where the configuration's JSON goes.
const LOADER_JS: &str = include_str!("../../static/liveuser-loader.js");
const INIT_JS: &str = include_str!("../../static/liveuser-init.js");
/// What a page's script tag gets instead of the client when its embed cannot be served.
const ERROR_JS: &str = include_str!("../../static/liveuser-error.js");
/// Where the error goes in [`ERROR_JS`].
const ERROR_PLACEHOLDER: &str = "__LIVEUSER_ERROR__";
/// Where the configuration goes in [`LOADER_JS`] and [`INIT_JS`].
const CONFIG_PLACEHOLDER: &str = "__LIVEUSER_CONFIG__";

/// `reconnectDelay` bounds and default, in milliseconds.
pub const RECONNECT_DELAY_DEFAULT: u32 = 3000;
const RECONNECT_DELAY_RANGE: std::ops::RangeInclusive<u32> = 500..=60_000;
/// What `/liveuser.js` may weigh gzipped (checked by a unit test and the benchmark report): under
/// 6 KB. (4 KB until the SSE fallback, per-page counts and the privacy floor came in; 4.5 KB
/// until a refused site was told so.)
pub const GZIP_BUDGET_BYTES: usize = 6 * 1024 - 1;
/// The longest element id accepted.
const MAX_ELEMENT_ID: usize = 128;

/// The configuration handed to `LiveUser.init`, with the original's parameter names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    pub site_id: String,
    pub server_url: String,
    pub display_element_id: String,
    pub total_count_element_id: String,
    pub enable_total_count: bool,
    pub reconnect_delay: u32,
    pub heartbeat_interval: u32,
    pub debug: bool,
    /// `countTabs`: count every tab (the original's way) instead of every browser.
    pub count_tabs: bool,
    /// `page`: `auto` (the page's path) or a page name, to count this page's readers too.
    pub page: Option<String>,
    /// Where the page's count goes.
    pub page_element_id: String,
    /// `auto` (a WebSocket, else an SSE stream), `websocket` or `sse`.
    pub transport: String,
    /// `pageGroups`: path patterns (`/users/*`) whose pages count as one, named by the pattern.
    pub page_groups: Vec<String>,
    /// `lang`: the language numbers and words are written in (`None`: the page's).
    pub lang: Option<String>,
    /// `announce`: seconds between screen-reader announcements of the count (0: none).
    pub announce: u32,
    /// `countIdle`: whether a tab hidden for longer than `idleAfter` seconds still counts.
    pub count_idle: bool,
    pub idle_after: u32,
}

/// The most page groups, and `announce`'s bounds.
const MAX_PAGE_GROUPS: usize = 20;
const ANNOUNCE_RANGE: std::ops::RangeInclusive<u32> = 5..=3600;
/// `idleAfter`'s default and bounds, in seconds: five minutes; 5 s (for tests) to a day.
const IDLE_AFTER_DEFAULT: u32 = 300;
const IDLE_AFTER_RANGE: std::ops::RangeInclusive<u32> = 5..=86_400;

/// This service's own origin (`https://host`), from the request.
pub fn origin(req: &Request<Vec<u8>>) -> String {
    let scheme = req.uri().scheme_str().unwrap_or("https");
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| request::header(req, "host").map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{scheme}://{host}")
}

/// The WebSocket origin matching an http(s) origin.
fn ws_origin(origin: &str) -> String {
    if let Some(rest) = origin.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = origin.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        origin.to_string()
    }
}

/// Reads and checks the loader's query. A bad `siteId` is an error (400); every other bad
/// value falls back to its default, as a mistyped embed should still show a number.
pub fn client_config(
    query: Option<&str>,
    origin: &str,
    config: &Config,
) -> Result<ClientConfig, HttpError> {
    let site = SiteId::from_query(query_value(query, "siteId").as_deref())?;
    let flag_or = |name: &str, default: bool| {
        query_value(query, name)
            .and_then(|v| parse_bool(&v))
            .unwrap_or(default)
    };
    let flag = |name: &str| flag_or(name, false);
    let seconds = |name: &str, range: std::ops::RangeInclusive<u32>, default: u32| {
        query_value(query, name)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|v| range.contains(v))
            .unwrap_or(default)
    };
    let element_id = |name: &str, default: &str| {
        query_value(query, name)
            .filter(|v| !v.is_empty() && v.len() <= MAX_ELEMENT_ID)
            .unwrap_or_else(|| default.to_string())
    };
    Ok(ClientConfig {
        site_id: site.to_string(),
        server_url: server_url(query_value(query, "serverUrl").as_deref(), origin),
        display_element_id: element_id("displayElementId", "liveuser"),
        total_count_element_id: element_id("totalCountElementId", "liveuser_totalvisits"),
        enable_total_count: flag("enableTotalCount"),
        reconnect_delay: query_value(query, "reconnectDelay")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|v| RECONNECT_DELAY_RANGE.contains(v))
            .unwrap_or(RECONNECT_DELAY_DEFAULT),
        heartbeat_interval: config.heartbeat_interval_secs * 1000,
        debug: flag("debug"),
        count_tabs: flag("countTabs"),
        page: query_value(query, "page")
            .filter(|p| p == "auto" || p == "hash" || page::check(p).is_ok()),
        page_element_id: element_id("pageElementId", "liveuser_page"),
        transport: query_value(query, "transport")
            .filter(|t| ["auto", "websocket", "sse"].contains(&t.as_str()))
            .unwrap_or_else(|| "auto".to_string()),
        page_groups: query_value(query, "pageGroups")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|g| g.starts_with('/') && page::check(g).is_ok())
                    .take(MAX_PAGE_GROUPS)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        lang: query_value(query, "lang").filter(|l| is_language_tag(l)),
        announce: seconds("announce", ANNOUNCE_RANGE, 0),
        count_idle: flag_or("countIdle", true),
        idle_after: seconds("idleAfter", IDLE_AFTER_RANGE, IDLE_AFTER_DEFAULT),
    })
}

/// A BCP 47 language tag's shape (`en`, `de-CH`, `zh-Hant-TW`): letters, digits and hyphens.
fn is_language_tag(text: &str) -> bool {
    (2..=35).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && text.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
}

/// `serverUrl` must be a ws:// or wss:// URL; anything else means this service's own.
/// (`baseUrl` is accepted for compatibility and ignored: nothing is loaded from it.)
fn server_url(given: Option<&str>, origin: &str) -> String {
    let own = ws_origin(origin);
    let Some(given) = given else { return own };
    match url::Url::parse(given) {
        Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some() => {
            u.as_str().trim_end_matches('/').to_string()
        }
        _ => own,
    }
}

/// The client's own defaults (`DEFAULTS` in `static/client/state.js`, which a unit test holds
/// to these): the loader's with no query, no origin and the default heartbeat.
pub fn client_defaults() -> &'static serde_json::Map<String, serde_json::Value> {
    static DEFAULTS: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let defaults = client_config(None, "", &Config::default()).ok();
        match defaults.map(serde_json::to_value) {
            Some(Ok(serde_json::Value::Object(map))) => map,
            _ => serde_json::Map::new(),
        }
    })
}

/// The configuration as JSON that is safe inside a script (see [`inert_json`]), without what
/// equals the client's own defaults (the client fills them in): every option a page can set
/// would otherwise weigh on every page's script.
pub fn script_json(config: &ClientConfig) -> String {
    let mut json = match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return "{}".to_string(),
    };
    let defaults = client_defaults();
    json.retain(|key, value| defaults.get(key) != Some(value));
    inert_json(&serde_json::Value::Object(json).to_string())
}

/// `json` as it may stand inside a script: no `<`, `>`, `&` or line separators literally.
fn inert_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The starting scripts, minified once (each request only fills in its JSON).
static LOADER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static INIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static ERROR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn template(made: &'static std::sync::OnceLock<String>, source: &str) -> &'static str {
    made.get_or_init(|| crate::surfaces::client::minify::minify(source))
}

/// The body of `/liveuser.js`: the client, then `LiveUser.init` with this page's config
/// (unless a copy loaded earlier already runs).
pub fn loader_body(config: &ClientConfig) -> String {
    format!(
        "{}{}",
        crate::surfaces::client::served(),
        template(&LOADER, LOADER_JS).replace(CONFIG_PLACEHOLDER, &script_json(config))
    )
}

/// The body of `/liveuser.js` for a script tag whose embed is refused (`error`): a script that
/// shows the refusal where the count would be and fires `liveuser:error`. A browser runs no
/// script answered with a 4xx, so the page would otherwise say "Loading..." for good.
pub fn refusal_body(error: &HttpError) -> String {
    let detail = serde_json::json!({
        "error": error.code(),
        "message": error.to_string(),
        "text": "Invalid site id",
    });
    template(&ERROR, ERROR_JS).replace(ERROR_PLACEHOLDER, &inert_json(&detail.to_string()))
}

/// The body of `/init-liveuser.js`, for pages that load the client directly: it starts with
/// `window.LiveUserConfig` over this service's defaults.
pub fn init_body(defaults: &ClientConfig) -> String {
    format!(
        "{}{}",
        crate::surfaces::client::served(),
        template(&INIT, INIT_JS).replace(CONFIG_PLACEHOLDER, &script_json(defaults))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const ORIGIN: &str = "https://live.example";

    fn cfg(query: &str) -> ClientConfig {
        client_config(Some(query), ORIGIN, &Config::default()).expect("config")
    }

    #[test]
    fn page_groups_language_and_announcements_are_checked() {
        let c = cfg("siteId=a&page=hash&pageGroups=/users/*,bad,/docs/**&lang=de-CH&announce=30");
        assert_eq!(c.page.as_deref(), Some("hash"));
        assert_eq!(
            c.page_groups,
            vec!["/users/*".to_string(), "/docs/**".to_string()]
        );
        assert_eq!((c.lang.as_deref(), c.announce), (Some("de-CH"), 30));
        for bad in [
            "lang=%3Cx%3E&announce=1",
            "lang=1x&announce=99999",
            "lang=e&announce=x",
        ] {
            let c = cfg(&format!("siteId=a&{bad}"));
            assert_eq!((c.lang, c.announce), (None, 0), "{bad}");
        }
    }

    #[test]
    fn idle_tabs_are_counted_unless_asked_and_idle_after_is_checked() {
        let c = cfg("siteId=a&countIdle=false&idleAfter=5");
        assert_eq!((c.count_idle, c.idle_after), (false, 5));
        assert_eq!(cfg("siteId=a&idleAfter=86400").idle_after, 86_400);
        for bad in [
            "countIdle=no&idleAfter=4",
            "idleAfter=86401",
            "idleAfter=x",
            "idleAfter=-5",
        ] {
            let c = cfg(&format!("siteId=a&{bad}"));
            assert_eq!((c.count_idle, c.idle_after), (true, 300), "{bad}");
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let c = client_config(None, ORIGIN, &Config::default()).expect("config");
        assert_eq!(
            c,
            ClientConfig {
                site_id: "default-site".into(),
                server_url: "wss://live.example".into(),
                display_element_id: "liveuser".into(),
                total_count_element_id: "liveuser_totalvisits".into(),
                enable_total_count: false,
                reconnect_delay: 3000,
                heartbeat_interval: 30_000,
                debug: false,
                count_tabs: false,
                page: None,
                page_element_id: "liveuser_page".into(),
                transport: "auto".into(),
                page_groups: Vec::new(),
                lang: None,
                announce: 0,
                count_idle: true,
                idle_after: 300,
            }
        );
    }

    #[test]
    fn a_page_is_auto_or_a_page_name_and_anything_else_counts_the_site_only() {
        assert_eq!(cfg("siteId=shop&page=auto").page.as_deref(), Some("auto"));
        assert_eq!(
            cfg("siteId=shop&page=/pricing").page.as_deref(),
            Some("/pricing")
        );
        for bad in ["page=", "page=a%20b", "page=%C3%A9"] {
            assert_eq!(cfg(&format!("siteId=shop&{bad}")).page, None, "{bad}");
        }
        assert_eq!(
            cfg("siteId=shop&pageElementId=here").page_element_id,
            "here"
        );
        assert_eq!(cfg("siteId=shop&transport=sse").transport, "sse");
        assert_eq!(cfg("siteId=shop&transport=pigeon").transport, "auto");
    }

    #[test]
    fn parameters_are_read_with_the_original_names() {
        let c = cfg("siteId=shop&enableTotalCount=1&totalCountElementId=tv&displayElementId=n&reconnectDelay=5000&debug=true&serverUrl=wss://ws.example/");
        assert_eq!(c.site_id, "shop");
        assert!(c.enable_total_count && c.debug);
        assert_eq!(
            (
                c.display_element_id.as_str(),
                c.total_count_element_id.as_str()
            ),
            ("n", "tv")
        );
        assert_eq!(c.reconnect_delay, 5000);
        assert_eq!(c.server_url, "wss://ws.example");
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        for delay in ["abc", "", "-1", "499", "60001", "1e9", "3000.5"] {
            assert_eq!(
                cfg(&format!("reconnectDelay={delay}")).reconnect_delay,
                3000,
                "{delay}"
            );
        }
        assert_eq!(cfg("reconnectDelay=500").reconnect_delay, 500);
        assert!(!cfg("enableTotalCount=yes").enable_total_count);
        assert!(cfg("enableTotalCount=TRUE").enable_total_count);
        for url in [
            "javascript:alert(1)",
            "https://evil.example",
            "ws://",
            "nonsense",
        ] {
            assert_eq!(
                cfg(&format!("serverUrl={url}")).server_url,
                "wss://live.example",
                "{url}"
            );
        }
        assert_eq!(
            cfg(&format!("displayElementId={}", "x".repeat(129))).display_element_id,
            "liveuser"
        );
    }

    #[test]
    fn a_refused_embed_is_told_to_the_page_as_inert_json() {
        let err = client_config(Some("siteId=%3Cscript%3E"), ORIGIN, &Config::default())
            .expect_err("bad");
        let body = refusal_body(&err);
        assert!(body.contains(r#""error":"invalid_site_id""#), "{body}");
        assert!(!body.contains("<script") && !body.contains(ERROR_PLACEHOLDER));
        assert!(body.contains("liveuser:error"));
    }

    #[test]
    fn a_bad_site_id_is_an_error() {
        assert!(client_config(Some("siteId=%3Cscript%3E"), ORIGIN, &Config::default()).is_err());
    }

    #[test]
    fn base_url_never_reaches_the_script() {
        let body = loader_body(&cfg("baseUrl=https://evil.example&siteId=a"));
        assert!(!body.contains("evil.example"));
    }

    #[test]
    fn values_are_embedded_as_inert_json() {
        let c = cfg("displayElementId=%3C/script%3E%3Cscript%3Ealert(1)%3C/script%3E&totalCountElementId=a%22%2Balert(1)%2B%22");
        let body = loader_body(&c);
        assert!(!body.contains("</script>"));
        assert!(!body.contains("<script>"));
        assert!(body.contains(r#""displayElementId":"\u003c/script\u003e\u003cscript\u003ealert(1)\u003c/script\u003e""#));
        assert!(body.contains(r#""totalCountElementId":"a\"+alert(1)+\"""#));
    }

    #[test]
    fn the_config_fills_the_placeholder_of_both_scripts() {
        let c = cfg("siteId=shop");
        for body in [loader_body(&c), init_body(&c)] {
            assert!(!body.contains(CONFIG_PLACEHOLDER));
            assert!(body.contains(r#""siteId":"shop""#));
        }
    }

    #[test]
    fn the_json_leaves_out_the_clients_own_defaults_and_they_are_the_clients() {
        let json = script_json(&cfg("siteId=shop&countIdle=false&idleAfter=60"));
        assert_eq!(
            json,
            r#"{"countIdle":false,"idleAfter":60,"serverUrl":"wss://live.example","siteId":"shop"}"#
        );
        // Each default as the client's DEFAULTS write it (`displayElementId:"liveuser"`).
        let client = crate::surfaces::client::served();
        for (key, value) in client_defaults() {
            let default = format!("{key}:{value}");
            assert!(
                client.contains(&default),
                "the client's DEFAULTS lack {default}"
            );
        }
    }

    #[test]
    fn the_loader_fits_its_gzip_budget() {
        let body = loader_body(&cfg("siteId=shop&enableTotalCount=true"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(body.as_bytes()).expect("gzip");
        let size = gz.finish().expect("gzip").len();
        println!("loader: {} bytes, {size} bytes gzipped", body.len());
        assert!(size <= GZIP_BUDGET_BYTES, "{size} bytes gzipped");
    }

    #[test]
    fn ws_origin_follows_the_scheme() {
        assert_eq!(ws_origin("http://127.0.0.1:7676"), "ws://127.0.0.1:7676");
        assert_eq!(ws_origin("https://a.example"), "wss://a.example");
    }
}
