//! Publishing through a backend: Pushpin's publish port locally, Fastly's publish API in
//! production. Both take the same GRIP JSON body.

use fastly::http::Method;
use fastly::Request;

use crate::platform::publisher::{PublishError, PublishItem, Publisher};
use crate::wire::publish::request_body;

/// POSTs publish requests to `url_path` on `backend`.
pub struct BackendPublisher {
    pub backend: String,
    pub url: String,
    /// Sent as `Fastly-Key` when set (the production API needs it; Pushpin does not).
    pub token: Option<String>,
}

impl Publisher for BackendPublisher {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        let mut req = Request::new(Method::POST, self.url.as_str())
            .with_header("Content-Type", "application/json")
            .with_body(request_body(items));
        if let Some(token) = &self.token {
            req.set_header("Fastly-Key", token.as_str());
        }
        let mut resp = req
            .send(self.backend.as_str())
            .map_err(|e| PublishError::Unreachable(e.root_cause().to_string()))?;
        let status = resp.get_status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            let body: String = resp.take_body_str().chars().take(200).collect();
            Err(PublishError::Rejected { status, body })
        }
    }
}
