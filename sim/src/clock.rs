//! Virtual time. Everything in the simulation happens at a virtual microsecond; a request runs
//! on its own [`RequestClock`], which starts when the request arrives and moves forward by the
//! latency of every host call it makes (and by its sleeps). The library sees milliseconds on
//! its POP's clock, which may be off true time by that POP's skew.

use std::cell::Cell;

use liveuser_edge::platform::clock::Clock;

/// Where virtual time starts: 2026-11-28T00:00:00Z, in microseconds since the Unix epoch.
pub const EPOCH_US: u64 = 1_795_824_000_000_000;

/// Milliseconds and seconds as microseconds.
pub const MS: u64 = 1_000;
pub const SEC: u64 = 1_000_000;
pub const MIN: u64 = 60 * SEC;
pub const HOUR: u64 = 60 * MIN;

/// One request's clock.
pub struct RequestClock {
    now_us: Cell<u64>,
    /// This POP's offset from true time, in microseconds.
    skew_us: i64,
}

impl RequestClock {
    pub fn new(start_us: u64, skew_us: i64) -> RequestClock {
        RequestClock {
            now_us: Cell::new(start_us),
            skew_us,
        }
    }

    /// True (unskewed) virtual time.
    pub fn now_us(&self) -> u64 {
        self.now_us.get()
    }

    /// Moves the request's time forward by a host call's latency.
    pub fn spend(&self, us: u64) {
        self.now_us.set(self.now_us.get() + us);
    }
}

impl Clock for RequestClock {
    fn now_ms(&self) -> u64 {
        (self.now_us.get() as i64 + self.skew_us).max(0) as u64 / 1000
    }

    fn sleep_until(&self, at_ms: u64) {
        let target = (at_ms as i64 * 1000 - self.skew_us).max(0) as u64;
        if target > self.now_us.get() {
            self.now_us.set(target);
        }
    }
}
