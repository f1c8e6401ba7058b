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
    project_root().join(".tools/fastly-cli/node_modules/@fastly/cli-linux-x64/fastly")
}
