# Sourced by the scripts in this folder: where the project's tools are.
# Viceroy and cargo-installed tools live in ~/.cargo/bin; the Fastly CLI in the project.
export PATH="$HOME/.cargo/bin:$PATH"
FASTLY_CLI_DIR=.tools/fastly-cli
FASTLY_CLI="$FASTLY_CLI_DIR/node_modules/@fastly/cli-linux-x64/fastly"
