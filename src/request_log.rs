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

/// `liveuser <event> site=… detail=…`: what went wrong behind a request's error, for the log
/// only (the client's error body names no store or internal error).
pub fn detail(event: &str, site: &crate::site::SiteId, detail: &str) {
    println!("liveuser {event} site={site} detail={detail:?}");
}

/// `liveuser broadcast …`: one per broadcast a request ran (or lost to another POP), with
/// what it cost.
pub fn broadcast(
    plan: &crate::broadcast::Plan,
    outcome: &Result<crate::broadcast::Outcome, crate::broadcast::BroadcastError>,
    kv: KvCounts,
    publishes: u32,
    late_ms: u64,
) {
    use crate::broadcast::{Outcome, Reason};
    let reason = match plan.reason {
        Reason::Change => "change",
        Reason::Sweep { .. } => "sweep",
    };
    let result = match outcome {
        Ok(Outcome::Lost) => "result=lost".to_string(),
        Ok(Outcome::Counted(c)) => {
            let published = match &c.publish {
                None => "result=unchanged".to_string(),
                Some(Ok(())) => "result=ok".to_string(),
                Some(Err(e)) => format!("result=publish-failed error={:?}", e.to_string()),
            };
            format!(
                "count={} keys={} deleted={} {published}",
                c.count, c.keys_listed, c.deleted
            )
        }
        Err(e) => format!("result=count-failed error={:?}", e.to_string()),
    };
    println!(
        "liveuser broadcast site={} slot={} reason={reason} {result} {kv} publish={publishes} late_ms={late_ms}",
        plan.site, plan.slot_end_ms
    );
}
