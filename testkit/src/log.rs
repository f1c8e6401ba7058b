//! Reading the service's log lines: one parser shared by the end-to-end tests and the
//! benchmarks, so a change to a line's fields changes one place here.

use crate::stack::Stack;

/// The value of `name=value` in a log line (values are single words or quoted strings).
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(&format!(" {name}="))
        .nth(1)
        .and_then(|s| s.split(' ').next())
}

/// A numeric field; 0 when absent or not a number.
pub fn number(line: &str, name: &str) -> u64 {
    field(line, name).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// One `liveuser broadcast` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub slot: u64,
    /// `change` or `sweep`.
    pub reason: String,
    /// `ok`, `unchanged`, `lost`, `publish-failed`, `count-failed`.
    pub result: String,
    pub count: Option<u64>,
    /// From the slot's end until the broadcast finished, in ms.
    pub late_ms: u64,
}

impl Broadcast {
    pub fn parse(line: &str) -> Option<Broadcast> {
        Some(Broadcast {
            slot: field(line, "slot")?.parse().ok()?,
            reason: field(line, "reason")?.to_string(),
            result: field(line, "result")?.to_string(),
            count: field(line, "count").and_then(|c| c.parse().ok()),
            late_ms: number(line, "late_ms"),
        })
    }

    /// Whether it published an update.
    pub fn published(&self) -> bool {
        self.result == "ok"
    }
}

impl Stack {
    /// Every broadcast line for `site` so far.
    pub fn broadcasts(&self, site: &str) -> Vec<Broadcast> {
        self.app_log_lines(&format!("liveuser broadcast site={site} "))
            .iter()
            .filter_map(|l| Broadcast::parse(l))
            .collect()
    }

    /// The slots of the broadcasts for `site` that published an update.
    pub fn published_slots(&self, site: &str) -> Vec<u64> {
        self.broadcasts(site)
            .into_iter()
            .filter(Broadcast::published)
            .map(|b| b.slot)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_broadcast_line() {
        let line = "liveuser broadcast site=a slot=1500 reason=change count=3 keys=3 deleted=0 result=ok kv_lookup=0 kv_insert=1 kv_delete=0 kv_list=1 publish=1 late_ms=310";
        let b = Broadcast::parse(line).expect("parses");
        assert_eq!(
            (
                b.slot,
                b.reason.as_str(),
                b.result.as_str(),
                b.count,
                b.late_ms
            ),
            (1500, "change", "ok", Some(3), 310)
        );
        assert!(b.published());
        let lost = Broadcast::parse(
            "liveuser broadcast site=a slot=2000 reason=sweep result=lost kv_lookup=0 late_ms=3",
        )
        .expect("parses");
        assert!(!lost.published());
        assert_eq!(number(line, "kv_list"), 1);
        assert_eq!(number(line, "missing"), 0);
    }
}
