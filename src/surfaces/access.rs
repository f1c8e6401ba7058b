//! Access to the public reads (the API, the badge, SSE heartbeats): CORS, so any page can
//! read them, and each client's budget of reads a minute (see `count::limits`).

use http::{header, Request, Response};

use crate::count::limits::{self, ClientKey, Verdict};
use crate::platform::log::Line;
use crate::platform::Services;
use crate::wire::request::ClientAddress;

/// Adds CORS headers to an API error, so pages can read why their GET failed.
pub fn with_cors(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    resp
}

/// The key of the request's client (its address), when it came with one (tests send none).
pub fn client_of(req: &Request<Vec<u8>>, services: &Services) -> Option<ClientKey> {
    let ClientAddress(address) = req.extensions().get::<ClientAddress>()?;
    let now_ms = services.clock.now_ms();
    Some(limits::client_key(
        services.secrets,
        services.cache,
        services.ids,
        now_ms,
        address,
    ))
}

/// Whether `client` may make one more API request (to `path`) this minute, and counts it; a
/// client refused is logged. Requests without a client are not limited.
pub fn may_read(services: &Services, path: &str, client: Option<&ClientKey>) -> bool {
    let Some(client) = client else {
        return true;
    };
    let now_ms = services.clock.now_ms();
    match limits::take_api_read(services.cache, &services.config.limits, client, now_ms) {
        Verdict::Within => true,
        Verdict::Unchecked => {
            services
                .log
                .emit(&Line::LimitUnchecked { limit: "api-reads" });
            true
        }
        Verdict::Over => {
            services.log.emit(&Line::ApiLimited { path });
            false
        }
    }
}
