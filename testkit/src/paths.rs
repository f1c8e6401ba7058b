//! Where the project's files are: its root, the wasm the tests run, the Fastly CLI the
//! setup installs.

use std::path::PathBuf;

/// The project's root folder.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The wasm the tests run: the release build `scripts/test` makes before running them.
pub fn wasm_path() -> PathBuf {
    project_root().join("target/wasm32-wasip1/release/liveuser-edge.wasm")
}

/// The Fastly CLI `scripts/setup` installs into the project (the same as `scripts/env.sh`
/// names).
pub fn fastly_cli() -> PathBuf {
    project_root().join(format!(
        ".tools/fastly-cli/node_modules/@fastly/cli-{}/fastly",
        fastly_cli_platform()
    ))
}

/// The platform part of the Fastly CLI's npm package for this machine (`linux-x64`, …), as
/// `scripts/env.sh` picks it.
pub fn fastly_cli_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

/// The Chromium (or Chrome) the browser tests drive: `$CHROMIUM`, else the first of the usual
/// places that exists.
pub fn chromium() -> PathBuf {
    if let Some(given) = std::env::var_os("CHROMIUM").filter(|v| !v.is_empty()) {
        return PathBuf::from(given);
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
        "/Applications/Chromium.app/Contents/MacOS/Chromium",
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A file of the npm packages `scripts/setup --browser` installs for the browser tests (React,
/// Vue, TypeScript), by its path under `node_modules`.
pub fn web_package(path: &str) -> PathBuf {
    project_root().join(".tools/web/node_modules").join(path)
}
