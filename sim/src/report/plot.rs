//! The report's plot: a simple SVG line chart, the per-minute series of a run, and the
//! charts over time of the long runs and of a POP dying.

use std::fmt::Write;

use super::verdicts::find;
use crate::clock::{HOUR, MIN};
use crate::scenarios::Run;

/// A simple line chart: series of (x, y) points, x in minutes.
pub fn chart(
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y0: f64,
    width: f64,
    height: f64,
) -> String {
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let (left, right, top, bottom) = (70.0, 20.0, 30.0, 40.0);
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
    let x_max = xs.fold(1.0f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let px = |x: f64| left + (width - left - right) * x / x_max;
    let py = |y: f64| y0 + top + (height - top - bottom) * (1.0 - y / y_max);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="{}" font-size="14" font-weight="bold">{title}</text>"#,
        y0 + 18.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        y0 + top,
        width - left - right,
        height - top - bottom
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
            left - 4.0,
            py(y) + 3.0,
            fmt_num(y)
        );
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{:.0}</text>"##,
            px(x_max * i as f64 / 4.0),
            y0 + height - bottom + 14.0,
            x_max * i as f64 / 4.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">minutes</text>"##,
        left + (width - left - right) / 2.0,
        y0 + height - 8.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="12" y="{}" font-size="10" transform="rotate(-90 12 {})" text-anchor="middle">{y_label}</text>"##,
        y0 + height / 2.0,
        y0 + height / 2.0
    );
    for (i, (label, points)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" fill="{color}">{label}</text>"#,
            left + 10.0 + 260.0 * i as f64,
            y0 + top + 14.0
        );
    }
    svg
}

fn fmt_num(y: f64) -> String {
    if y >= 10_000.0 {
        format!("{:.0}K", y / 1000.0)
    } else if y >= 10.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

/// Points of a line: (minutes, value).
pub type Series = Vec<(f64, f64)>;

/// Per-minute series of a run: KV operations a second, and keys listed per count.
pub fn series(run: &Run) -> (Series, Series) {
    let kv = run.world.kv.borrow();
    let ops: Vec<(f64, f64)> = kv
        .per_minute
        .iter()
        .enumerate()
        .skip(2)
        .map(|(i, o)| (i as f64, o.total() as f64 / 60.0))
        .collect();
    let m = run.world.metrics.borrow();
    let mut per_minute: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for b in &m.broadcasts {
        let e = per_minute.entry(b.published_us / MIN).or_default();
        e.0 += b.keys_listed as f64;
        e.1 += 1.0;
    }
    let listed = per_minute
        .into_iter()
        .map(|(min, (sum, n))| (min as f64, sum / n))
        .collect();
    let _ = HOUR;
    (ops, listed)
}

/// The plot: KV operations a second and keys listed per count over the long runs, and the
/// count after a POP died.
pub fn plot(runs: &[Run]) -> String {
    let (w, h) = (900.0, 260.0);
    let mut body = String::new();
    let mut y = 0.0;
    let long: Vec<&Run> = runs
        .iter()
        .filter(|r| r.key.starts_with("steady"))
        .collect();
    if !long.is_empty() {
        let ops: Vec<(&str, Series)> = long.iter().map(|r| (r.key, series(r).0)).collect();
        body.push_str(&chart(
            "KV operations a second (all kinds), per minute",
            "ops / s",
            &ops,
            y,
            w,
            h,
        ));
        y += h;
        let listed: Vec<(&str, Series)> = long.iter().map(|r| (r.key, series(r).1)).collect();
        body.push_str(&chart(
            "Keys listed per count, per minute",
            "keys",
            &listed,
            y,
            w,
            h,
        ));
        y += h;
    }
    if let Some(run) = find(runs, "pop-death") {
        let death = run.pop_death_us.unwrap_or(0);
        let m = run.world.metrics.borrow();
        let points: Series = m
            .phantoms
            .iter()
            .filter(|(t, _)| *t + MIN >= death && *t <= death + 3 * MIN)
            .map(|(t, p)| {
                (
                    (*t as f64 - death as f64) / MIN as f64 + 1.0,
                    (*p).max(0) as f64,
                )
            })
            .collect();
        body.push_str(&chart(
            "After a POP dies (at minute 1): pages' count minus sockets open",
            "phantoms",
            &[("pop-death", points)],
            y,
            w,
            h,
        ));
        y += h;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}
