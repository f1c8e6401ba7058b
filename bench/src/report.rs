//! BENCHMARKS.md and the settle-latency plot.

use std::fmt::Write;

use crate::scenarios::{Churn, Costs, FirstCount, OpCost, Wave};
use crate::stats::Spread;

/// Everything one run measured.
pub struct Run {
    pub machine: String,
    pub date: String,
    pub waves: Vec<Wave>,
    pub churn: Vec<Churn>,
    pub first_counts: Vec<FirstCount>,
    pub costs: Costs,
    pub wasm_bytes: u64,
    pub package_bytes: u64,
    pub loader_bytes: usize,
    pub loader_gzip_bytes: usize,
}

/// The design's bounds, as the report checks them: one place for each number.
pub const SETTLE_BOUND_MS: f64 = 1500.0;
pub const BROADCASTS_PER_SECOND_BOUND: usize = 2;
pub const LOADER_GZIP_BOUND_BYTES: usize = liveuser_edge::surfaces::loader::GZIP_BUDGET_BYTES;
/// A new page's first count (p50), and its exact count (p99), from the socket's opening.
pub const FIRST_COUNT_BOUND_MS: f64 = 50.0;
pub const EXACT_COUNT_BOUND_MS: f64 = 1000.0;

fn ms(s: &Spread) -> String {
    format!("{:.0} / {:.0} / {:.0}", s.p50, s.p99, s.max)
}

fn ms_fine(s: &Spread) -> String {
    format!("{:.2} / {:.2} / {:.2}", s.p50, s.p99, s.max)
}

fn ops(o: &OpCost) -> String {
    format!(
        "{:.2} reads, {:.2} writes (max {}), {:.2} lists",
        o.kv_reads, o.kv_writes, o.max_writes, o.kv_lists
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "within"
    } else {
        "**exceeds**"
    }
}

pub fn markdown(run: &Run) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# LiveUser benchmarks\n");
    let _ = writeln!(
        md,
        "Measured on the local stack (Pushpin 1.36 standing in for Fanout, Viceroy 0.22 running the release wasm), \
         on {}, {}. Regenerate with `scripts/bench`. Clients connect to Pushpin directly, as browsers reach Fanout \
         in production; each client joins like the LiveUser client and records every count it is told.\n",
        run.machine, run.date
    );
    let _ = writeln!(md, "Design bounds: at most {BROADCASTS_PER_SECOND_BOUND} count broadcasts a second per site (across all POPs); every page showing the count within {SETTLE_BOUND_MS:.0} ms of the last change (as the widget shows it: above 1,000 pages are told only what they would show differently, \"4.5K\", and restated exactly every 10 s while counts go out; the API and the badge stay exact); at most one KV write per heartbeat (one a heartbeat-interval window) and none deleted; a key for each window a presence reaches at OPEN (two or three); no listing per event.\n");

    let _ = writeln!(
        md,
        "## Waves: N clients join one site, then a tenth leave\n"
    );
    let _ = writeln!(md, "| N | connect (whole wave) | handshake retries | settle after joins p50 / p99 / max ms | settle after leaves p50 / p99 / max ms | broadcasts | most in any second | slowest broadcast ms | delivered msgs/s | bound (≤ {BROADCASTS_PER_SECOND_BOUND} a second, ≤ {SETTLE_BOUND_MS:.0} ms) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for w in &run.waves {
        if w.settle.count == 0 {
            let why = w
                .stopped
                .as_deref()
                .unwrap_or("no client was told the count");
            let _ = writeln!(md, "| {} | stopped: {why} | | | | | | | | |", w.n);
            continue;
        }
        let leave = match &w.stopped {
            Some(why) => format!("not settled: {why}"),
            None => ms(&w.leave_settle),
        };
        let ok = w.stopped.is_none()
            && w.max_in_a_second <= BROADCASTS_PER_SECOND_BOUND
            && w.settle.max <= SETTLE_BOUND_MS
            && w.leave_settle.max <= SETTLE_BOUND_MS;
        let _ = writeln!(
            md,
            "| {} | {:.1} s | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
            w.n,
            w.connect.as_secs_f64(),
            w.retries,
            ms(&w.settle),
            leave,
            w.broadcasts,
            w.max_in_a_second,
            w.slowest_broadcast_ms,
            w.delivered_per_s(),
            verdict(ok)
        );
    }
    let _ = writeln!(md, "\nSettle latency is the time from the last change (the last handshake, or the last close) until each client's page shows the count (the exact number, or above 1,000 the same short form the widget shows). ");
    let _ = writeln!(md, "Broadcasts are counted over the whole wave (connects plus settling), and per wall-clock second. The original broadcasts on every join and leave: N broadcasts to up to N pages, O(N²) messages. ");
    let _ = writeln!(md, "The slowest broadcast column is the time from a slot's end until its publish returned (the design's part: 300 ms KV settle, a listing (split over census requests to the service above 900 readers), the publishes). ");
    let _ = writeln!(md, "Everything (Pushpin, Viceroy, and the load generator with its N sockets) shares the machine ({}): where settle exceeds the bound, the slowest-broadcast column and the connect time show the local runtime saturated (Viceroy instantiates the wasm per request), not a broadcast the design held back.\n", run.machine);
    let _ = writeln!(md, "![settle latency against N](settle-latency.svg)\n");
    where_it_stops(&mut md, &run.waves);

    let _ = writeln!(md, "## KV operations per event (from the request log)\n");
    let _ = writeln!(md, "| N | OPEN | join or heartbeat (TEXT) | CLOSE |");
    let _ = writeln!(md, "|---|---|---|---|");
    for w in run.waves.iter().filter(|w| w.open.requests > 0) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            w.n,
            ops(&w.open),
            ops(&w.join),
            ops(&w.close)
        );
    }
    let c = &run.costs;
    let _ = writeln!(md, "\nHeartbeats ({} requests; half of them due a refresh, half not): {} (bound: at most 1 write; {}).\n", c.beat_ops.requests, ops(&c.beat_ops), verdict(c.beat_ops.max_writes <= 1));

    let _ = writeln!(
        md,
        "## Cost per event against a no-op route of the same binary\n"
    );
    let _ = writeln!(md, "Client-observed latency of signed WebSocket-over-HTTP requests sent one at a time straight to Viceroy, and of `GET /healthz` (returns 204, touches nothing), in the same run. Viceroy instantiates the wasm per request, so the no-op is the floor.\n");
    let _ = writeln!(md, "| request | p50 / p99 / max ms | p50 vs no-op |");
    let _ = writeln!(md, "|---|---|---|");
    for (name, s) in [
        ("no-op (`GET /healthz`)", &c.noop),
        ("OPEN (1 KV write)", &c.open),
        ("heartbeat, key fresh (no write)", &c.beat_fresh),
        ("heartbeat, key due (1 write)", &c.beat_due),
        ("CLOSE (deletes the lease's keys)", &c.close),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {:.2}× |",
            ms_fine(s),
            s.p50 / c.noop.p50.max(0.001)
        );
    }

    let _ = writeln!(md, "\n## Churn: clients join and leave continuously\n");
    let _ = writeln!(md, "A base population stays on the site while new clients join at the given rate, each leaving after a second.\n");
    let _ = writeln!(md, "| joins+leaves/s | seconds | base | joins | broadcasts | max broadcasts in any second | exact after churn | settle after p50 / p99 / max ms | bound (≤ {BROADCASTS_PER_SECOND_BOUND}/s) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for ch in &run.churn {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            ch.rate,
            ch.seconds,
            ch.base,
            ch.joins,
            ch.broadcasts,
            ch.max_in_a_second,
            if ch.exact_after { "yes" } else { "**no**" },
            ms(&ch.settle_after),
            verdict(ch.max_in_a_second <= BROADCASTS_PER_SECOND_BOUND)
        );
    }

    let _ = writeln!(md, "\n## A new page's first count\n");
    let _ = writeln!(md, "From the moment a page's socket opens: its first count (in the reply to its join: the last broadcast's count plus the page, from the POP's snapshot cache) and the exact count. `settled`: pages arrive one at a time, 1.5 s apart, on a site whose readers have settled; `burst`: all at once. The bounds: first count p50 ≤ {FIRST_COUNT_BOUND_MS:.0} ms, exact count p99 ≤ {EXACT_COUNT_BOUND_MS:.0} ms.\n");
    let _ = writeln!(md, "| arrivals | readers already there | new pages | first count p50 / p99 / max ms | exact count p50 / p99 / max ms | never exact | bound |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for f in &run.first_counts {
        let holds = f.never_exact == 0
            && f.first.p50 <= FIRST_COUNT_BOUND_MS
            && f.exact.p99 <= EXACT_COUNT_BOUND_MS;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.kind,
            f.base,
            f.newcomers,
            ms(&f.first),
            ms(&f.exact),
            f.never_exact,
            verdict(holds)
        );
    }
    let slow_burst = run
        .first_counts
        .iter()
        .any(|f| f.kind == "burst" && f.first.p50 > FIRST_COUNT_BOUND_MS);
    if slow_burst {
        let _ = writeln!(
            md,
            "\nIn the burst every new page opens at once: its join queues behind the burst's other \
             OPEN and join requests in the one local Viceroy (which instantiates the wasm per \
             request) on this machine's cores, so its first count waits for that queue, not for a \
             broadcast: the settled row is the same code path without the queue."
        );
    }

    let _ = writeln!(md, "\n## Sizes\n");
    let _ = writeln!(md, "| artifact | bytes | bound |");
    let _ = writeln!(md, "|---|---|---|");
    let _ = writeln!(
        md,
        "| wasm (release: opt-level s, LTO, stripped) | {} | |",
        run.wasm_bytes
    );
    let _ = writeln!(
        md,
        "| package (`fastly compute build`) | {} | |",
        run.package_bytes
    );
    let _ = writeln!(
        md,
        "| `/liveuser.js` (loader + client) | {} | |",
        run.loader_bytes
    );
    let _ = writeln!(
        md,
        "| `/liveuser.js` gzipped | {} | ≤ {LOADER_GZIP_BOUND_BYTES} ({}) |",
        run.loader_gzip_bytes,
        verdict(run.loader_gzip_bytes <= LOADER_GZIP_BOUND_BYTES)
    );
    md
}

/// Says up to which N every bound held, and what the first wave beyond it measured.
fn where_it_stops(md: &mut String, waves: &[Wave]) {
    let holds = |w: &Wave| {
        w.stopped.is_none()
            && w.settle.max <= SETTLE_BOUND_MS
            && w.leave_settle.max <= SETTLE_BOUND_MS
    };
    let (Some(best), Some(first)) = (
        waves.iter().rfind(|w| holds(w)),
        waves.iter().find(|w| !holds(w)),
    ) else {
        return;
    };
    let _ = writeln!(
        md,
        "**Where it stops on this machine.** Up to N = {} every bound holds. At N = {} the wave took {:.0} s to connect \
         (against {:.1} s at N = {}), the slowest broadcast took {} ms, broadcasts stayed bounded (at most {} in any second), and the lowest count \
         a client was told once all had joined was {}{}. The cores are saturated: Viceroy instantiates the wasm for every \
         WebSocket-over-HTTP request, Pushpin delivers every broadcast to N sockets, and the load generator runs N sockets of its own. \
         Requests queue in front of the local runtime until heartbeats arrive later than the presence TTL, and live \
         connections expire. On Fastly, Compute scales out per request and Fanout delivers; this is the local stand-in's limit.\n",
        best.n,
        first.n,
        first.connect.as_secs_f64(),
        best.connect.as_secs_f64(),
        best.n,
        first.slowest_broadcast_ms,
        first.max_in_a_second,
        first.lowest_after,
        match &first.stopped {
            Some(why) => format!(" (the wave stopped: {why})"),
            None => String::new(),
        }
    );
}

/// A line plot of settle latency (p50, p99, max) against N, log-scaled N.
pub fn svg(waves: &[Wave]) -> String {
    let points: Vec<&Wave> = waves.iter().filter(|w| w.settle.count == w.n).collect();
    let (w, h, left, right, top, bottom) = (640.0, 360.0, 70.0, 45.0, 30.0, 50.0);
    let max_ms = points
        .iter()
        .map(|p| p.settle.max.max(p.leave_settle.max))
        .fold(SETTLE_BOUND_MS, f64::max)
        * 1.1;
    let ns: Vec<f64> = points.iter().map(|p| (p.n as f64).log10()).collect();
    let (lo, hi) = (
        ns.iter().copied().fold(f64::INFINITY, f64::min).min(2.0),
        ns.iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
            .max(3.0),
    );
    let x = |n: usize| left + ((n as f64).log10() - lo) / (hi - lo).max(0.001) * (w - left - right);
    let y = |v: f64| top + (1.0 - v / max_ms) * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">Settle latency after a wave of N joins (ms)</text>"#,
        w / 2.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        h - bottom
    );
    // Ticks every 500 ms, or every 2 s once the scale is large.
    let step = if max_ms > 4000.0 { 2000.0 } else { 500.0 };
    let mut tick = 0.0;
    while tick <= max_ms {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end">{tick:.0}</text>"##,
            y(tick),
            w - right,
            left - 6.0,
            y(tick) + 4.0
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#c00" stroke-dasharray="4 3"/><text x="{1}" y="{2}" text-anchor="end" fill="#c00">bound {3:.0} ms</text>"##,
        y(SETTLE_BOUND_MS),
        w - right,
        y(SETTLE_BOUND_MS) - 4.0,
        SETTLE_BOUND_MS
    );
    for p in &points {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">N = {}</text>"#,
            x(p.n),
            h - bottom + 18.0,
            p.n
        );
    }
    for (name, color, pick) in [
        (
            "p50",
            "#16a34a",
            (|p: &Wave| p.settle.p50) as fn(&Wave) -> f64,
        ),
        ("p99", "#2563eb", |p: &Wave| p.settle.p99),
        ("max", "#9333ea", |p: &Wave| p.settle.max),
    ] {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.n), y(pick(p))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in &points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(p.n),
                y(pick(p))
            );
        }
        let _ = name;
    }
    let legend = [("p50", "#16a34a"), ("p99", "#2563eb"), ("max", "#9333ea")];
    for (i, (name, color)) in legend.iter().enumerate() {
        let lx = left + 10.0 + i as f64 * 70.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="12" height="4" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            top + 4.0,
            lx + 16.0,
            top + 9.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">clients on one site (log scale)</text>"#,
        w / 2.0,
        h - 10.0
    );
    s.push_str("</svg>\n");
    s
}
