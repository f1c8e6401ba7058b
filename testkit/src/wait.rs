//! Waiting for what the stack settles into: reads that may lag the pages by a broadcast.

use std::time::{Duration, Instant};

/// Polls `f` every 200 ms until it is true or `limit` has passed; whether it became true.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}
