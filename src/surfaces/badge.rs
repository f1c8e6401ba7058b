//! The live badge: `GET /badge/{siteId}.svg` draws "online | 42" as an SVG image for READMEs and
//! pages that run no script, and `GET /api/shields/{siteId}` answers the same in shields.io's
//! endpoint-badge schema, so shields.io can draw it in its own styles. Both take `label` and
//! `color`, checked here; the SVG is built from fixed markup with every text escaped, and
//! carries no script, link or external reference.

use serde_json::{json, Value};

use crate::count::floor::Shown;
use crate::wire::error::HttpError;
use crate::wire::request::query_value;

/// The longest label accepted (characters).
pub const MAX_LABEL_CHARS: usize = 32;
/// How long a badge may be cached: short, since the count is live.
pub const CACHE_CONTROL: &str = "public, max-age=10";
/// The badge's content type.
pub const CONTENT_TYPE: &str = "image/svg+xml; charset=utf-8";

/// shields.io's named colours, and what they are in the SVG.
const COLORS: &[(&str, &str)] = &[
    ("brightgreen", "#4c1"),
    ("green", "#97ca00"),
    ("yellowgreen", "#a4a61d"),
    ("yellow", "#dfb317"),
    ("orange", "#fe7d37"),
    ("red", "#e05d44"),
    ("blue", "#007ec6"),
    ("lightgrey", "#9f9f9f"),
    ("grey", "#555"),
    ("success", "#4c1"),
    ("important", "#fe7d37"),
    ("critical", "#e05d44"),
    ("informational", "#007ec6"),
    ("inactive", "#9f9f9f"),
];

/// What a badge says beside its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    pub label: String,
    /// A name from shields.io's palette, or hex digits (3 or 6, no `#`).
    pub color: String,
}

/// What a badge says when no count has been taken for longer than one stands.
pub const STALE: &str = "stale";

impl Style {
    /// This style for a stale count: grey, whatever colour was asked.
    pub fn stale(self) -> Style {
        Style {
            color: "lightgrey".into(),
            ..self
        }
    }

    /// Reads `label` (default `online`) and `color` (default `brightgreen`) from the query.
    pub fn from_query(query: Option<&str>) -> Result<Style, HttpError> {
        let label = query_value(query, "label").unwrap_or_else(|| "online".to_string());
        let label_ok = !label.trim().is_empty()
            && label.chars().count() <= MAX_LABEL_CHARS
            && label.chars().all(shows_as_itself);
        if !label_ok {
            return Err(HttpError::InvalidParameter {
                code: "invalid_label",
                message: format!(
                    "label must be 1–{MAX_LABEL_CHARS} characters, none a control, a format \
                     character or a noncharacter"
                ),
            });
        }
        let color = query_value(query, "color").unwrap_or_else(|| "brightgreen".to_string());
        if svg_color(&color).is_none() {
            return Err(HttpError::InvalidParameter {
                code: "invalid_color",
                message: "color must be a shields.io colour name or 3 or 6 hex digits".into(),
            });
        }
        Ok(Style { label, color })
    }
}

/// Whether `c` draws as itself in a label: not a control character, not a Unicode format
/// character (general category Cf: bidirectional overrides such as U+202E turn the rest of
/// the badge around, zero-width ones hide text), and not a noncharacter (U+FDD0–U+FDEF, and
/// the last two code points of every plane, U+FFFE and U+FFFF among them).
fn shows_as_itself(c: char) -> bool {
    /// General category Cf, Unicode 15.1.
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let cp = u32::from(c);
    let format = FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp));
    let noncharacter = (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE;
    !c.is_control() && !format && !noncharacter
}

/// The SVG fill for a colour name or hex digits.
fn svg_color(color: &str) -> Option<String> {
    if let Some((_, hex)) = COLORS.iter().find(|(name, _)| *name == color) {
        return Some((*hex).to_string());
    }
    let hex = matches!(color.len(), 3 | 6) && color.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| format!("#{}", color.to_ascii_lowercase()))
}

/// A count as a badge shows it: `999`, `1.2K`, `3.5M` (as the widget does), or "fewer than
/// N" below the site's privacy floor.
pub fn message(count: Shown) -> String {
    let n = format_number(count.value);
    if count.below_min {
        format!("fewer than {n}")
    } else {
        n
    }
}

/// 999 -> "999", 1234 -> "1.2K", 3456789 -> "3.5M"; what would round to "1000K" is "1M".
pub fn format_number(n: u64) -> String {
    let short = |value: f64, unit: &str| {
        let text = format!("{value:.1}");
        format!("{}{unit}", text.trim_end_matches(".0"))
    };
    if n >= 999_950 {
        short(n as f64 / 1e6, "M")
    } else if n >= 1000 {
        short(n as f64 / 1e3, "K")
    } else {
        n.to_string()
    }
}

/// shields.io's endpoint-badge JSON.
pub fn shields(style: &Style, message: &str) -> Value {
    json!({
        "schemaVersion": 1,
        "label": style.label,
        "message": message,
        "color": style.color,
    })
}

/// The badge: a flat two-part SVG, sized to its texts.
pub fn svg(style: &Style, message: &str) -> String {
    let fill = svg_color(&style.color).unwrap_or_else(|| "#4c1".to_string());
    let (label_w, message_w) = (text_width(&style.label), text_width(message));
    let width = label_w + message_w;
    let (label, message) = (escape(&style.label), escape(message));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{label_w}" height="20" fill="#555"/><rect x="{label_w}" width="{message_w}" height="20" fill="{fill}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{label}</text><text x="{lx}" y="14">{label}</text><text x="{mx}" y="15" fill="#010101" fill-opacity=".3">{message}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
        lx = label_w / 2,
        mx = label_w + message_w / 2,
    )
}

/// About how wide `text` is in 11 px Verdana, with padding.
fn text_width(text: &str) -> u32 {
    let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX / 8);
    chars.saturating_mul(7).saturating_add(10)
}

/// Text safe inside SVG elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::floor::Floor;

    #[test]
    fn labels_and_colours_are_checked() {
        let ok = Style::from_query(Some("label=readers&color=blue")).expect("style");
        assert_eq!((ok.label.as_str(), ok.color.as_str()), ("readers", "blue"));
        assert_eq!(
            Style::from_query(None).expect("defaults").color,
            "brightgreen"
        );
        assert!(Style::from_query(Some("color=ABC")).is_ok());
        // Letters of any script, accents and emoji are labels.
        for label in [
            "l%C3%A9ctores",
            "%E8%AA%AD%E8%80%85",
            "%D7%A7%D7%95%D7%A8%D7%90%D7%99%D7%9D",
            "%F0%9F%91%80",
        ] {
            assert!(
                Style::from_query(Some(&format!("label={label}"))).is_ok(),
                "{label}"
            );
        }
        for (query, code) in [
            ("label=", "invalid_label"),
            ("label=%0A", "invalid_label"),
            // U+202E (right-to-left override), U+200B (zero width space), U+FEFF, U+FFFE,
            // U+FDD0, U+10FFFF, U+E0041 (a tag character).
            ("label=a%E2%80%AEb", "invalid_label"),
            ("label=a%E2%80%8Bb", "invalid_label"),
            ("label=%EF%BB%BFa", "invalid_label"),
            ("label=a%EF%BF%BE", "invalid_label"),
            ("label=a%EF%B7%90", "invalid_label"),
            ("label=a%F4%8F%BF%BF", "invalid_label"),
            ("label=a%F3%A0%81%81", "invalid_label"),
            (
                &*format!("label={}", "x".repeat(MAX_LABEL_CHARS + 1)),
                "invalid_label",
            ),
            ("color=purple-ish", "invalid_color"),
            ("color=%23fff", "invalid_color"),
            ("color=12345", "invalid_color"),
        ] {
            let err = Style::from_query(Some(query)).expect_err(query);
            assert_eq!((err.status(), err.code()), (400, code), "{query}");
        }
    }

    #[test]
    fn the_svg_escapes_every_text_and_carries_no_script() {
        let style = Style::from_query(Some("label=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27%26"))
            .expect("style");
        let svg = svg(&style, "42");
        assert!(!svg.to_ascii_lowercase().contains("<script"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
        for banned in [
            "href",
            "onload",
            "javascript:",
            "<foreignObject",
            "<image",
            "<a ",
        ] {
            assert!(!svg.contains(banned), "{banned}");
        }
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(">42</text>"));
    }

    #[test]
    fn messages_read_like_the_widget_and_respect_the_floor() {
        assert_eq!(message(Shown::exact(999)), "999");
        assert_eq!(message(Shown::exact(1234)), "1.2K");
        assert_eq!(message(Shown::exact(999_999)), "1M");
        assert_eq!(message(Shown::exact(3_456_789)), "3.5M");
        assert_eq!(message(Floor::at(5).show(2)), "fewer than 5");
        let style = Style::from_query(None).expect("style");
        assert_eq!(
            shields(&style, "7"),
            json!({"schemaVersion": 1, "label": "online", "message": "7", "color": "brightgreen"})
        );
    }
}
