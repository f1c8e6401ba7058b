//! What Fanout is told to hold for a stream: the same instruction on the stream's opening and on
//! each call Fanout makes while it holds it (each answer replaces the last instruction whole, so
//! every one names everything): the channels, the keep-alive, and the next link.
//!
//! The next link is GRIP's `Grip-Link: <…>; rel=next; timeout=N`: while Fanout holds the stream
//! and has sent nothing on one of its channels for N seconds, it calls the link (signed, as it
//! signs every call), and the answer is the stream's next instruction. A stream's own channel,
//! on which nothing is ever published, keeps that timer running however busy the site's channel
//! is. When the stream closes, Fanout forgets it and calls nothing more: presence kept by these
//! calls ends with the stream.

use http::{header, response};

use crate::platform::config::Config;
use crate::platform::secrets::KeyRing;
use crate::surfaces::sse::session::Session;
use crate::wire::grip;

/// Where Fanout calls while it holds a stream: this, then the stream's signed session
/// (`Session::to_link_token`). Each stream's path is its own, so Fanout, which merges calls
/// to the same path, never answers one stream with another's.
pub const ALIVE_PREFIX: &str = "/sse/alive/";

/// Fanout sends this on an idle stream, so proxies keep it open.
const KEEP_ALIVE: &str = ":\\n\\n; format=cstring; timeout=20";

/// The channels a stream is held on: the site's (or its totals'), its page's, and its own.
pub fn channels(session: &Session) -> Vec<String> {
    let site = &session.site;
    let mut channels = vec![if session.totals {
        site.totals_channel()
    } else {
        site.channel()
    }];
    if let Some(page_id) = &session.lease.page {
        channels.push(crate::count::page::channel(site, page_id));
    }
    channels.push(own_channel(session));
    channels
}

/// The stream's own channel: no message is published on it (only, on a leave, its end).
pub fn own_channel(session: &Session) -> String {
    format!("stream:{}:{}", session.site, session.stream)
}

/// How long Fanout waits before calling the next link: one heartbeat interval, so a stream's
/// presence is renewed as often as a socket's.
pub fn link_timeout_secs(config: &Config) -> u32 {
    config.heartbeat_interval_secs.max(1)
}

/// The `Grip-Link` value for `session`'s next call, its session signed with the link key.
pub fn next_link(session: &Session, keys: &KeyRing, config: &Config) -> String {
    format!(
        "<{ALIVE_PREFIX}{}>; rel=next; timeout={}",
        session.to_link_token(keys),
        link_timeout_secs(config)
    )
}

/// A 200 response holding `session`'s stream (`keys`: the link keys).
pub fn held(session: &Session, keys: &KeyRing, config: &Config) -> response::Builder {
    http::Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(grip::HOLD_HEADER, "stream")
        .header(grip::CHANNEL_HEADER, channels(session).join(", "))
        .header(grip::KEEP_ALIVE_STREAM_HEADER, KEEP_ALIVE)
        .header(grip::LINK_HEADER, next_link(session, keys, config))
}

/// A 200 response with no instruction: Fanout ends the stream (the browser reconnects, and a
/// new stream starts from a fresh session).
pub fn ended() -> response::Builder {
    http::Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
}
