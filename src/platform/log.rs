//! The service's log lines. Every kind of line is one variant of [`Line`], written one way
//! (`liveuser <kind> name=value …`), so the tests, the benchmark and the simulator read them
//! from one place (testkit's `log` module parses this format). [`Log`] is the seam: on Compute
//! the lines go to stdout and, in production, to the `liveuser_log` endpoint; tests record
//! them; the simulator counts them.
//!
//! No line carries an IP address, a user agent, a cookie, a token or a secret.

use std::fmt;

use crate::platform::config::ConfigWarning;
use crate::platform::kv::KvCounts;
use crate::wire::error::HttpError;
use crate::wire::site::SiteId;

/// What one request cost, for its log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCost {
    pub status: u16,
    pub kv: KvCounts,
    pub publishes: u32,
    pub ms: u64,
}

/// What a broadcast came to, in its log line's words (`count::broadcast` says which of these
/// each of its outcomes is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastResult<'a> {
    /// Another POP had claimed the slot.
    Lost,
    /// The site was counted: how many, the keys listed and deleted, and what was published.
    Counted {
        count: u64,
        keys: u64,
        deleted: usize,
        publish: Published<'a>,
    },
    CountFailed {
        error: &'a str,
    },
}

/// What a counted broadcast published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published<'a> {
    /// A sweep found nothing to publish.
    Unchanged,
    Ok,
    Failed {
        error: &'a str,
    },
}

/// What became of a webhook delivery, in its log line's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult<'a> {
    Delivered { status: u16 },
    Refused { status: u16 },
    Failed { error: &'a str },
}

/// One log line.
#[derive(Debug)]
pub enum Line<'a> {
    /// One per request: what it cost, and the handler's fields (a WebSocket call's
    /// connection, site and events).
    Request {
        method: &'a str,
        path: &'a str,
        cost: RequestCost,
        fields: &'a str,
    },
    /// An error answered to a request.
    Error {
        method: &'a str,
        path: &'a str,
        error: &'a HttpError,
    },
    /// One per broadcast a request ran (or lost to another POP), with what it cost.
    Broadcast {
        site: &'a SiteId,
        slot_end_ms: u64,
        /// `change` or `sweep`.
        reason: &'static str,
        result: BroadcastResult<'a>,
        kv: KvCounts,
        publishes: u32,
        late_ms: u64,
    },
    /// What went wrong behind an API error (the client's error body names no store or
    /// internal error): `event` names it.
    Detail {
        event: &'static str,
        site: &'a SiteId,
        detail: &'a str,
    },
    /// A browser's WebSocket handed to Fanout.
    Handoff {
        path: &'a str,
    },
    HandoffFailed {
        path: &'a str,
        error: &'a str,
    },
    /// A setting that did not parse, replaced by its default.
    ConfigWarning(&'a ConfigWarning),
    /// The service closed a connection.
    WsClose {
        conn: &'a str,
        site: &'a SiteId,
        code: u16,
        reason: &'a str,
    },
    /// A `join` named another site than the one the connection opened on.
    JoinSiteIgnored {
        conn: &'a str,
        site: &'a SiteId,
        asked: &'a str,
    },
    /// A connection asked for more page moves than `page::MAX_MOVES`: not taken.
    PageMoveLimited {
        conn: &'a str,
        site: &'a SiteId,
    },
    /// A visit took more than one attempt to record.
    VisitRetried {
        conn: &'a str,
        site: &'a SiteId,
        attempts: u32,
    },
    /// A visit was not counted: its client had counted its share this hour.
    VisitLimited {
        conn: &'a str,
        site: &'a SiteId,
    },
    /// A crawler or automated browser connected: it is handed off uncounted (its user agent is
    /// not logged).
    Uncounted {
        site: &'a SiteId,
    },
    /// A network (an IPv6 /48, an IPv4 address) started its share of counted readers on a site
    /// this minute: another upgrade was refused.
    PresenceLimited {
        site: &'a SiteId,
    },
    /// A WebSocket was refused: its client holds its share of sockets on the site.
    SocketLimited {
        site: &'a SiteId,
    },
    /// A per-client limit could not be checked (the cache failed): the request was allowed.
    LimitUnchecked {
        limit: &'static str,
    },
    /// An API read was refused: its client made its share this minute.
    ApiLimited {
        path: &'a str,
    },
    /// A visit could not be recorded.
    VisitFailed {
        conn: &'a str,
        site: &'a SiteId,
        error: &'a str,
    },
    PresenceJoinFailed {
        conn: &'a str,
        site: &'a SiteId,
        error: &'a str,
    },
    PresenceRefreshFailed {
        conn: &'a str,
        site: &'a SiteId,
        error: &'a str,
    },
    PresenceLeaveFailed {
        conn: &'a str,
        site: &'a SiteId,
        error: &'a str,
    },
    KvOpenFailed {
        store: &'a str,
        error: &'a str,
    },
    CacheSetFailed {
        key: &'a str,
        error: &'a str,
    },
    /// The site registry could not be read: the entry this POP last read answers
    /// (`registered`: whether there was one), or, with none read in a day, nothing does
    /// (`registered`: `None`).
    RegistryKept {
        site: &'a SiteId,
        registered: Option<bool>,
    },
    /// Fanout's call for a held stream ended the stream instead of renewing it: its link did
    /// not verify (`invalid-link`: another key's, or not this service's), its reader had left
    /// (`left`), or its site is not served any more (`unknown-site`).
    StreamEnded {
        site: Option<&'a SiteId>,
        reason: &'a str,
    },
    /// A webhook's delivery of one crossing, by the one execution that claimed it: `result`
    /// `delivered` (a 2xx: `status`), `refused` (a status not tried again) or `failed` (every
    /// attempt failed: `error`).
    Webhook {
        site: &'a SiteId,
        hook: &'a str,
        event: &'a str,
        crossing: u64,
        count: u64,
        attempts: u32,
        result: WebhookResult<'a>,
    },
    /// The service panicked (a bug): where, and the message.
    Panic {
        message: &'a str,
    },
}

impl Line<'_> {
    /// The line's kind: the word after `liveuser`.
    pub fn kind(&self) -> &'static str {
        match self {
            Line::Request { .. } => "request",
            Line::Error { .. } => "error",
            Line::Broadcast { .. } => "broadcast",
            Line::Detail { event, .. } => event,
            Line::Handoff { .. } => "handoff",
            Line::HandoffFailed { .. } => "handoff-failed",
            Line::ConfigWarning(_) => "config-warning",
            Line::WsClose { .. } => "ws-close",
            Line::JoinSiteIgnored { .. } => "join-site-ignored",
            Line::PageMoveLimited { .. } => "page-move-limited",
            Line::VisitRetried { .. } => "visit-retried",
            Line::VisitFailed { .. } => "visit-failed",
            Line::VisitLimited { .. } => "visit-limited",
            Line::SocketLimited { .. } => "socket-limited",
            Line::PresenceLimited { .. } => "presence-limited",
            Line::Uncounted { .. } => "uncounted",
            Line::ApiLimited { .. } => "api-limited",
            Line::LimitUnchecked { .. } => "limit-unchecked",
            Line::PresenceJoinFailed { .. } => "presence-join-failed",
            Line::PresenceRefreshFailed { .. } => "presence-refresh-failed",
            Line::PresenceLeaveFailed { .. } => "presence-leave-failed",
            Line::KvOpenFailed { .. } => "kv-open-failed",
            Line::CacheSetFailed { .. } => "cache-set-failed",
            Line::RegistryKept { .. } => "registry-kept",
            Line::StreamEnded { .. } => "stream-ended",
            Line::Webhook { .. } => "webhook",
            Line::Panic { .. } => "panic",
        }
    }

    fn fields(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Request {
                method,
                path,
                cost,
                fields,
            } => {
                let sep = if fields.is_empty() { "" } else { " " };
                write!(
                    f,
                    "method={method} path={path} status={} {} publish={} ms={}{sep}{fields}",
                    cost.status, cost.kv, cost.publishes, cost.ms
                )
            }
            Line::Error {
                method,
                path,
                error,
            } => {
                write!(
                    f,
                    "method={method} path={path} status={} error={} message={:?}",
                    error.status(),
                    error.code(),
                    error.to_string()
                )?;
                match error.reason() {
                    Some(reason) => write!(f, " reason={reason:?}"),
                    None => Ok(()),
                }
            }
            Line::Broadcast {
                site,
                slot_end_ms,
                reason,
                result,
                kv,
                publishes,
                late_ms,
            } => {
                write!(f, "site={site} slot={slot_end_ms} reason={reason} ")?;
                match result {
                    BroadcastResult::Lost => write!(f, "result=lost")?,
                    BroadcastResult::Counted {
                        count,
                        keys,
                        deleted,
                        publish,
                    } => {
                        write!(f, "count={count} keys={keys} deleted={deleted} ")?;
                        match publish {
                            Published::Unchanged => write!(f, "result=unchanged")?,
                            Published::Ok => write!(f, "result=ok")?,
                            Published::Failed { error } => {
                                write!(f, "result=publish-failed error={error:?}")?
                            }
                        }
                    }
                    BroadcastResult::CountFailed { error } => {
                        write!(f, "result=count-failed error={error:?}")?
                    }
                }
                write!(f, " {kv} publish={publishes} late_ms={late_ms}")
            }
            Line::Detail { site, detail, .. } => write!(f, "site={site} detail={detail:?}"),
            Line::Handoff { path } => write!(f, "path={path}"),
            Line::HandoffFailed { path, error } => write!(f, "path={path} error={error:?}"),
            Line::ConfigWarning(w) => {
                write!(f, "key={} value={:?} reason={:?}", w.key, w.value, w.reason)
            }
            Line::WsClose {
                conn,
                site,
                code,
                reason,
            } => write!(f, "conn={conn} site={site} code={code} reason={reason:?}"),
            Line::JoinSiteIgnored { conn, site, asked } => {
                write!(f, "conn={conn} site={site} asked={asked:?}")
            }
            Line::VisitRetried {
                conn,
                site,
                attempts,
            } => write!(f, "conn={conn} site={site} attempts={attempts}"),
            Line::VisitFailed { conn, site, error }
            | Line::PresenceJoinFailed { conn, site, error }
            | Line::PresenceRefreshFailed { conn, site, error }
            | Line::PresenceLeaveFailed { conn, site, error } => {
                write!(f, "conn={conn} site={site} error={error:?}")
            }
            Line::VisitLimited { conn, site } | Line::PageMoveLimited { conn, site } => {
                write!(f, "conn={conn} site={site}")
            }
            Line::SocketLimited { site }
            | Line::PresenceLimited { site }
            | Line::Uncounted { site } => write!(f, "site={site}"),
            Line::ApiLimited { path } => write!(f, "path={path}"),
            Line::LimitUnchecked { limit } => write!(f, "limit={limit}"),
            Line::KvOpenFailed { store, error } => write!(f, "store={store} error={error:?}"),
            Line::CacheSetFailed { key, error } => write!(f, "key={key} error={error:?}"),
            Line::RegistryKept { site, registered } => match registered {
                Some(r) => write!(f, "site={site} registered={r}"),
                None => write!(f, "site={site} registered=unknown"),
            },
            Line::StreamEnded { site, reason } => match site {
                Some(site) => write!(f, "site={site} reason={reason}"),
                None => write!(f, "site=- reason={reason}"),
            },
            Line::Webhook {
                site,
                hook,
                event,
                crossing,
                count,
                attempts,
                result,
            } => {
                write!(
                    f,
                    "site={site} hook={hook} event={event} crossing={crossing} count={count} attempts={attempts} "
                )?;
                match result {
                    WebhookResult::Delivered { status } => {
                        write!(f, "result=delivered status={status}")
                    }
                    WebhookResult::Refused { status } => {
                        write!(f, "result=refused status={status}")
                    }
                    WebhookResult::Failed { error } => write!(f, "result=failed error={error:?}"),
                }
            }
            Line::Panic { message } => write!(f, "message={message:?}"),
        }
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "liveuser {} ", self.kind())?;
        self.fields(f)
    }
}

/// Where log lines go.
pub trait Log {
    fn emit(&self, line: &Line);
}

/// Standard output: Viceroy's (and `fastly compute serve`'s) log.
pub struct Stdout;

impl Log for Stdout {
    fn emit(&self, line: &Line) {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_signature_s_reason_is_logged() {
        let e = HttpError::NotSigned {
            reason: "Grip-Sig expired".into(),
        };
        let line = Line::Error {
            method: "POST",
            path: "/ws",
            error: &e,
        }
        .to_string();
        assert_eq!(
            line,
            "liveuser error method=POST path=/ws status=403 error=forbidden message=\"this endpoint takes signed requests only\" reason=\"Grip-Sig expired\""
        );
    }

    #[test]
    fn lines_have_one_format_the_testkit_parser_reads() {
        let cost = RequestCost {
            status: 200,
            kv: KvCounts {
                insert: 1,
                ..KvCounts::default()
            },
            publishes: 0,
            ms: 2,
        };
        let line = Line::Request {
            method: "POST",
            path: "/ws",
            cost,
            fields: "conn=c site=a events=OPEN",
        };
        assert_eq!(
            line.to_string(),
            "liveuser request method=POST path=/ws status=200 kv_lookup=0 kv_insert=1 kv_delete=0 kv_list=0 publish=0 ms=2 conn=c site=a events=OPEN"
        );
        let site = SiteId::parse("a").expect("site");
        let line = Line::Broadcast {
            site: &site,
            slot_end_ms: 1500,
            reason: "sweep",
            result: BroadcastResult::Lost,
            kv: KvCounts::default(),
            publishes: 0,
            late_ms: 4,
        };
        assert_eq!(
            line.to_string(),
            "liveuser broadcast site=a slot=1500 reason=sweep result=lost kv_lookup=0 kv_insert=0 kv_delete=0 kv_list=0 publish=0 late_ms=4"
        );
        let line = Line::VisitFailed {
            conn: "c",
            site: &site,
            error: "KV rate limited",
        };
        assert_eq!(line.kind(), "visit-failed");
        assert_eq!(
            line.to_string(),
            "liveuser visit-failed conn=c site=a error=\"KV rate limited\""
        );
        let line = Line::Webhook {
            site: &site,
            hook: "hk_1",
            event: "online.below",
            crossing: 2,
            count: 7,
            attempts: 3,
            result: WebhookResult::Failed {
                error: "status 503",
            },
        };
        assert_eq!(
            line.to_string(),
            "liveuser webhook site=a hook=hk_1 event=online.below crossing=2 count=7 attempts=3 result=failed error=\"status 503\""
        );
    }
}
