//! Time, behind a trait so tests control it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Blocks until `now_ms() >= at_ms`.
    fn sleep_until(&self, at_ms: u64);

    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The real clock (works natively and in the Compute sandbox alike).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at_ms: u64) {
        let now = self.now_ms();
        if at_ms > now {
            std::thread::sleep(Duration::from_millis(at_ms - now));
        }
    }
}
