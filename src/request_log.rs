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

/// What one request cost, for its log line.
pub struct RequestCost {
    pub status: u16,
    pub kv: KvCounts,
    pub publishes: u32,
    pub ms: u64,
}

/// `liveuser request …`: one per request, with its cost and any handler fields.
pub fn request(method: &str, path: &str, cost: &RequestCost, fields: &str) {
    let RequestCost {
        status,
        kv,
        publishes,
        ms,
    } = cost;
    let sep = if fields.is_empty() { "" } else { " " };
    println!("liveuser request method={method} path={path} status={status} {kv} publish={publishes} ms={ms}{sep}{fields}");
}
