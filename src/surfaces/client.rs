//! The browser client as the service serves it: the files of `static/client/`, in order, in one
//! function (so they share one state and add no global but `LiveUser`), without the comments
//! and indentation that are for readers of the source.

/// The client's files, in the order they are served: each declares what the later ones use.
pub const FILES: [(&str, &str); 12] = [
    ("state.js", include_str!("../../static/client/state.js")),
    ("words.js", include_str!("../../static/client/words.js")),
    ("render.js", include_str!("../../static/client/render.js")),
    ("status.js", include_str!("../../static/client/status.js")),
    (
        "announcer.js",
        include_str!("../../static/client/announcer.js"),
    ),
    (
        "messages.js",
        include_str!("../../static/client/messages.js"),
    ),
    ("socket.js", include_str!("../../static/client/socket.js")),
    ("stream.js", include_str!("../../static/client/stream.js")),
    ("refusal.js", include_str!("../../static/client/refusal.js")),
    ("page.js", include_str!("../../static/client/page.js")),
    ("tabs.js", include_str!("../../static/client/tabs.js")),
    (
        "lifecycle.js",
        include_str!("../../static/client/lifecycle.js"),
    ),
];

/// What opens the function the files run in. Loading the script twice must not open a second
/// connection: the first copy stays in charge.
const OPEN: &str = "(function () {\n\"use strict\";\nif (window.LiveUser) {\nreturn;\n}\n";
const CLOSE: &str = "})();\n";

/// The client as served (made once).
pub fn served() -> &'static str {
    static SERVED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVED.get_or_init(|| {
        let mut js = String::from(OPEN);
        for (_, source) in FILES {
            js.push_str(&without_comments(source));
        }
        js.push_str(CLOSE);
        js
    })
}

/// `js` without its blank lines and its whole-line `//` comments, each line without its
/// indentation (the client has no multi-line strings).
pub fn without_comments(js: &str) -> String {
    let mut out = String::with_capacity(js.len());
    for line in js.lines() {
        let code = line.trim_start();
        if !code.is_empty() && !code.starts_with("//") {
            out.push_str(code);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_client_leaves_out_comments_and_keeps_every_line_of_code() {
        let js = "// why\n\nvar u = \"http://x\"; // keep\n  f();\n";
        assert_eq!(
            without_comments(js),
            "var u = \"http://x\"; // keep\nf();\n"
        );
        let code_lines: usize = FILES
            .iter()
            .map(|(_, source)| {
                source
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
                    .count()
            })
            .sum();
        assert_eq!(
            served().lines().count(),
            code_lines + OPEN.lines().count() + CLOSE.lines().count()
        );
    }

    #[test]
    fn every_file_of_the_client_is_served_once_and_none_is_long() {
        let dir = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/static/client"))
            .expect("static/client");
        let mut on_disk: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(name, _)| name.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served);
        for (name, source) in FILES {
            assert!(source.lines().count() <= 300, "{name} is over 300 lines");
        }
    }
}
