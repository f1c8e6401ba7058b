//! The browser client as the service serves it: the files of `static/client/`, in order, in one
//! function (so they add no global but `LiveUser`); all but the last inside `widget()`, which
//! makes one site's widget with its own state; without the comments and indentation that are
//! for readers of the source ([`minify`]).

pub mod minify;

/// The client's files, in the order they are served: each declares what the later ones use.
/// All but the last make one site's widget (inside `widget()`); the last is the global.
pub const FILES: [(&str, &str); 14] = [
    ("state.js", include_str!("../../../static/client/state.js")),
    ("words.js", include_str!("../../../static/client/words.js")),
    (
        "render.js",
        include_str!("../../../static/client/render.js"),
    ),
    (
        "status.js",
        include_str!("../../../static/client/status.js"),
    ),
    (
        "announcer.js",
        include_str!("../../../static/client/announcer.js"),
    ),
    (
        "messages.js",
        include_str!("../../../static/client/messages.js"),
    ),
    (
        "socket.js",
        include_str!("../../../static/client/socket.js"),
    ),
    (
        "stream.js",
        include_str!("../../../static/client/stream.js"),
    ),
    (
        "refusal.js",
        include_str!("../../../static/client/refusal.js"),
    ),
    ("page.js", include_str!("../../../static/client/page.js")),
    ("tabs.js", include_str!("../../../static/client/tabs.js")),
    ("idle.js", include_str!("../../../static/client/idle.js")),
    (
        "lifecycle.js",
        include_str!("../../../static/client/lifecycle.js"),
    ),
    ("sites.js", include_str!("../../../static/client/sites.js")),
];

/// The function a widget's files run in: each call makes one site's widget, its own state.
const WIDGET_OPEN: &str = "function widget() {\n";
const WIDGET_CLOSE: &str = "return api;\n}\n";

/// The files as one body: the widget's in `widget()`, then the global.
fn body() -> String {
    let (global, widget) = FILES.split_last().expect("files");
    let mut js = String::from(WIDGET_OPEN);
    for (_, source) in widget {
        js.push_str(source);
        js.push('\n');
    }
    js.push_str(WIDGET_CLOSE);
    js.push_str(global.1);
    js
}

/// What starts the versioned script: the configuration from its own tag's data-* attributes.
const TAG_JS: &str = include_str!("../../../static/liveuser-tag.js");

/// The versioned script: the client and [`TAG_JS`], the same bytes wherever and however it is
/// asked for, at a path that names them (so a page may pin it with Subresource Integrity, and
/// a cache may keep it for good).
#[derive(Debug)]
pub struct Versioned {
    pub body: String,
    /// `/v/<first 12 hex digits of the body's SHA-256>/liveuser.js`.
    pub path: String,
    /// The `integrity` attribute that pins it: `sha384-<base64 of the body's SHA-384>`.
    pub integrity: String,
}

/// Where versioned scripts live.
pub const VERSIONED_PREFIX: &str = "/v/";

/// The versioned script of this build (made once).
pub fn versioned() -> &'static Versioned {
    use base64::Engine;
    use sha2::{Digest, Sha256, Sha384};
    static VERSIONED: std::sync::OnceLock<Versioned> = std::sync::OnceLock::new();
    VERSIONED.get_or_init(|| {
        let body = format!("{}{}", served(), minify::minify(TAG_JS));
        let version = crate::platform::secrets::hex_prefix(&Sha256::digest(body.as_bytes()), 6);
        let integrity = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha384::digest(body.as_bytes()))
        );
        Versioned {
            path: format!("{VERSIONED_PREFIX}{version}/liveuser.js"),
            body,
            integrity,
        }
    })
}

/// The ES module: the same client in the same function, whose API it exports. `init` fills in
/// this service as the server (from the module's own URL) unless told another.
const MODULE_OPEN: &str =
    "const LiveUser = (function () {\n\"use strict\";\nif (window.LiveUser) {\nreturn window.LiveUser;\n}\n";
const MODULE_CLOSE: &str = "return window.LiveUser;\n})();\n\
const serverUrl = new URL(import.meta.url).origin.replace(/^http/, \"ws\");\n\
export function init(config) {\nreturn LiveUser.init(Object.assign({ serverUrl: serverUrl }, config));\n}\n\
export const { destroy, config, state, subscribe, formatNumber } = LiveUser;\n\
export default { init, destroy, config, state, subscribe, formatNumber };\n";

/// The client as an ES module (`/liveuser.mjs`, and the npm package's `liveuser.mjs`).
pub fn module() -> &'static str {
    static MODULE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MODULE.get_or_init(|| minify::minify(&format!("{MODULE_OPEN}{}{MODULE_CLOSE}", body())))
}

/// What opens the function the files run in. Loading the script twice must not open a second
/// connection: the first copy stays in charge.
const OPEN: &str = "(function () {\n\"use strict\";\nif (window.LiveUser) {\nreturn;\n}\n";
const CLOSE: &str = "})();\n";

/// The client as served (made once).
pub fn served() -> &'static str {
    static SERVED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVED.get_or_init(|| minify::minify(&format!("{OPEN}{}{CLOSE}", body())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_client_keeps_every_function_and_none_of_the_comments() {
        let served = served();
        for (name, source) in FILES {
            for line in source.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("function ") {
                    let declared = rest.split('(').next().unwrap_or_default();
                    assert!(
                        served.contains(&format!("function {declared}(")),
                        "{name}: {declared}"
                    );
                }
            }
        }
        assert!(!served.contains("\n"), "one line");
        assert!(
            !served.contains("The service serves these files"),
            "no comment"
        );
    }

    #[test]
    fn the_versioned_script_is_named_and_pinned_by_its_bytes() {
        use base64::Engine;
        use sha2::{Digest, Sha384};
        let v = versioned();
        assert!(v.body.starts_with(served()));
        assert!(v.path.starts_with("/v/") && v.path.ends_with("/liveuser.js"));
        assert_eq!(v.path.len(), "/v/".len() + 12 + "/liveuser.js".len());
        let digest = base64::engine::general_purpose::STANDARD
            .decode(v.integrity.strip_prefix("sha384-").expect("sha384"))
            .expect("base64");
        assert_eq!(digest, Sha384::digest(v.body.as_bytes()).to_vec());
        // The README prints the snippet that pins this build's script.
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&v.path) && readme.contains(&v.integrity),
            "README.md must show {} with integrity=\"{}\"",
            v.path,
            v.integrity
        );
    }

    /// The npm package ships the module the service serves (`LIVEUSER_WRITE_PACKAGE=1 cargo
    /// test --lib surfaces::client` writes it after the client changed).
    #[test]
    fn the_npm_package_ships_the_served_module() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packages/liveuser/liveuser.mjs"
        );
        if std::env::var_os("LIVEUSER_WRITE_PACKAGE").is_some() {
            std::fs::write(path, module()).expect("write the package's module");
        }
        let shipped = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            shipped == module(),
            "packages/liveuser/liveuser.mjs is not the served module: run LIVEUSER_WRITE_PACKAGE=1 cargo test --lib surfaces::client"
        );
        assert!(module().contains("export default"));
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
