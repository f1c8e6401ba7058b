//! The service's log lines. One compact line per request says what it cost (KV operations,
//! publishes), so tests and benchmarks can count them; errors get a line of their own.
//! No line carries an IP address, a user agent or a cookie.

use crate::error::HttpError;
use crate::kv::KvCounts;

/// `liveuser error …`: an error answered to a request.
pub fn error(method: &str, path: &str, e: &HttpError) {
    println!(
        "liveuser error method={method} path={path} status={} error={} message={:?}",
        e.status(),
        e.code(),
        e.to_string()
    );
}

/// `liveuser request …`: one per request, with its cost.
pub fn request(method: &str, path: &str, status: u16, kv: KvCounts, publishes: u32, ms: u64) {
    println!("liveuser request method={method} path={path} status={status} {kv} publish={publishes} ms={ms}");
}
