//! A connection's query parameters: what the upgrade of a WebSocket (or the request of an SSE
//! stream) asks for, checked before the handoff, so a bad request is refused before Fanout, the
//! store or a channel is involved, and again when Fanout calls back.

use crate::count::{handover, page, presence};
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::request::{parse_bool, query_value};
use crate::wire::site::SiteId;

/// The query parameter naming the page a reader is on (see `page`).
pub const PAGE_PARAM: &str = "page";

/// The longest `clientId` accepted (the original client sends a short random string).
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// What the upgrade request's query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    pub site: SiteId,
    /// `enableTotalCount`: the page shows total visits (default false).
    pub totals: bool,
    /// `visit`: whether this connection starts a page view (default true, as the original
    /// client counts every connection); the client sends `visit=0` when it reconnects.
    pub visit: bool,
    /// `shareTabs`: the connection is shared by a browser's tabs and wants a handover token.
    pub share: bool,
    /// `handover`: the presence this connection takes over from a closing tab.
    pub handover: Option<String>,
    /// `page`: the id of the page the reader is on, when it asked to be counted on it.
    pub page: Option<String>,
    /// The page's name, when it has an id (for the site's dashboard: see `page::remember_name`).
    pub page_name: Option<String>,
}

/// Checks the query of a WebSocket upgrade (`siteId`, `clientId`, `enableTotalCount`,
/// `visit`). Used before the handoff, so a bad request is refused before Fanout, the store or
/// a channel is involved, and again at OPEN.
pub fn connect_params(
    services: &Services,
    query: Option<&str>,
) -> Result<ConnectParams, HttpError> {
    let site = SiteId::from_query(query_value(query, "siteId").as_deref())?;
    let client_id_len = query_value(query, "clientId").map_or(0, |c| c.len());
    if client_id_len > MAX_CLIENT_ID_LEN {
        return Err(HttpError::BadRequest(format!(
            "clientId has {client_id_len} bytes; at most {MAX_CLIENT_ID_LEN} are allowed"
        )));
    }
    let handover = query_value(query, handover::HANDOVER_PARAM);
    if handover
        .as_deref()
        .is_some_and(|h| !presence::is_presence_id(h))
    {
        return Err(HttpError::BadRequest(
            "handover must be a token this service gave (32 hex digits)".into(),
        ));
    }
    let name = query_value(query, PAGE_PARAM);
    let page = name
        .as_ref()
        .map(|p| page::counted_id(services, &site, p))
        .transpose()?
        .flatten();
    Ok(ConnectParams {
        page_name: name.filter(|_| page.is_some()),
        page,
        site,
        totals: bool_param(query, "enableTotalCount", false)?,
        visit: bool_param(query, "visit", true)?,
        share: bool_param(query, handover::SHARE_PARAM, false)?,
        handover,
    })
}

fn bool_param(query: Option<&str>, name: &str, default: bool) -> Result<bool, HttpError> {
    match query_value(query, name) {
        None => Ok(default),
        Some(raw) => parse_bool(&raw)
            .ok_or_else(|| HttpError::BadRequest(format!("{name} must be true, false, 1 or 0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::testing::TestServices;

    #[test]
    fn connect_params_check_site_and_client_id() {
        let t = TestServices::new();
        let s = t.services();
        assert_eq!(
            connect_params(&s, None).map(|p| p.site.to_string()),
            Ok("default-site".into())
        );
        assert_eq!(
            connect_params(&s, Some("siteId=a&clientId=x")).map(|p| p.site.to_string()),
            Ok("a".into())
        );
        assert!(connect_params(&s, Some(&format!("clientId={}", "x".repeat(129)))).is_err());
        assert!(connect_params(&s, Some("siteId=%3Cscript%3E")).is_err());
    }

    #[test]
    fn a_site_that_lists_its_page_prefixes_counts_only_those_pages() {
        let t = TestServices::new();
        crate::count::registry::register(&t, "docs", r#"{"pages": ["/guide/", "/api/"]}"#);
        let page_of = |t: &TestServices, query: &str| {
            connect_params(&t.services(), Some(query)).map(|p| p.page)
        };
        let listed = page_of(&t, "siteId=docs&page=/guide/intro").expect("params");
        assert_eq!(
            listed,
            Some(
                page::id(
                    &t.secrets,
                    &SiteId::parse("docs").expect("site"),
                    "/guide/intro"
                )
                .expect("id")
            )
        );
        assert_eq!(
            page_of(&t, "siteId=docs&page=/invented-1"),
            Ok(None),
            "the site only"
        );
        assert_eq!(
            page_of(&t, "siteId=docs&page=/api"),
            Ok(None),
            "a prefix is a prefix"
        );
        assert!(page_of(&t, "siteId=other&page=/anything")
            .expect("params")
            .is_some());
        // A bad page name is still refused, listed or not.
        assert!(page_of(&t, "siteId=docs&page=%01").is_err());
    }
}
