//! The census endpoint: another execution of this service asking for one share of a split
//! count (see `count::census`). Only the service's own signed requests are answered; anything
//! else gets a 4xx and costs no listing.

use http::{Method, Request, Response};

use crate::count::census;
use crate::platform::Services;
use crate::wire::error::HttpError;
use crate::wire::response;

/// Whether `path` is this endpoint's.
pub fn owns(path: &str) -> bool {
    path == census::CENSUS_PATH
}

/// Counts the share a signed census request names and answers its tally as JSON.
pub fn handle(req: &Request<Vec<u8>>, services: &Services) -> Result<Response<Vec<u8>>, HttpError> {
    if req.method() != Method::GET {
        return Err(HttpError::MethodNotAllowed { allow: "GET" });
    }
    let body = census::answer(services, req)?;
    let builder = Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store");
    Ok(response::finish(builder, body.into_bytes()))
}
