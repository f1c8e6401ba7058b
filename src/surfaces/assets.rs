//! Static files from `static/`, compiled into the binary.
//!
//! Compute has no file system at run time, so the files are embedded, each with its content
//! type. Responses carry a strong ETag: a hash of the bytes served (`wire::hash::fnv1a`).

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Every file served, by request path.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/static/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/style.css"),
    },
    Asset {
        path: "/static/history-chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/history-chart.js"),
    },
    Asset {
        path: "/static/demo-badge.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/demo-badge.js"),
    },
    Asset {
        path: "/static/dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/dashboard.js"),
    },
    Asset {
        path: "/static/dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/dashboard.css"),
    },
    Asset {
        path: "/favicon.ico",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/favicon.svg"),
    },
];

/// The demo page, a template: `@ORIGIN@` stands for this service's origin, `@WS_ORIGIN@` for
/// its WebSocket origin, `@VERSIONED@` and `@INTEGRITY@` for the pinned script's path and hash.
pub const INDEX_TEMPLATE: &str = include_str!("../../static/index.html");

/// The demo page for a service reached at `origin` (HTML-escaped into the embed snippets).
pub fn index_page(origin: &str) -> String {
    let pinned = crate::surfaces::client::versioned();
    let ws_origin = origin.replacen("http", "ws", 1);
    INDEX_TEMPLATE
        .replace("@WS_ORIGIN@", &html_escape(&ws_origin))
        .replace("@ORIGIN@", &html_escape(origin))
        .replace("@VERSIONED@", &pinned.path)
        .replace("@INTEGRITY@", &pinned.integrity)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The asset served at `path`, if any.
pub fn lookup(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_embeds_the_escaped_origin() {
        let page = index_page("https://a.example");
        assert!(page.contains("https://a.example/liveuser.js?siteId=your-site"));
        assert!(!page.contains('@'), "every placeholder filled");
        let pinned = crate::surfaces::client::versioned();
        assert!(page.contains(&format!("https://a.example{}", pinned.path)));
        assert!(page.contains(&pinned.integrity));
        assert!(page.contains("wss://a.example"));
        let hostile = index_page("http://x\"><script>");
        assert!(!hostile.contains("\"><script>"));
    }

    #[test]
    fn finds_the_stylesheet_and_nothing_outside_static() {
        assert!(lookup("/static/style.css").is_some());
        assert!(lookup("/static/../Cargo.toml").is_none());
        assert!(lookup("/nope").is_none());
    }
}
