//! Where the service's log lines go on Compute: stdout (Viceroy's output, for local runs and
//! `fastly compute serve`), and, unless the `log_endpoint` setting is `off` (as it is
//! locally), also the `liveuser_log` endpoint fastly.toml's `[setup]` declares. A panic is
//! logged to both.

use std::cell::RefCell;
use std::io::Write;

use fastly::log::Endpoint;

use crate::platform::fastly_toml::LOG_ENDPOINT;
use crate::platform::log::{Line, Log};

pub struct HostLog {
    endpoint: RefCell<Option<Endpoint>>,
}

impl HostLog {
    /// Stdout only, until the settings say whether the endpoint is wanted.
    pub fn stdout() -> HostLog {
        HostLog {
            endpoint: RefCell::new(None),
        }
    }

    /// From now on, lines also go to the `liveuser_log` endpoint.
    pub fn to_endpoint(&self) {
        *self.endpoint.borrow_mut() = Endpoint::try_from_name(LOG_ENDPOINT).ok();
    }
}

impl Log for HostLog {
    fn emit(&self, line: &Line) {
        let text = line.to_string();
        println!("{text}");
        if let Some(endpoint) = self.endpoint.borrow_mut().as_mut() {
            // One write per line: an endpoint takes each write as one log message. A log
            // endpoint that fails must not fail the request.
            let _ = endpoint.write_all(text.as_bytes());
        }
    }
}

/// Logs any panic (where, and its message) to stdout and the endpoint before the execution
/// ends.
pub fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        let log = HostLog::stdout();
        log.to_endpoint();
        log.emit(&Line::Panic {
            message: &info.to_string(),
        });
    }));
}
