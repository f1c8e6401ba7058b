# Sourced by the scripts in this folder: where the project's tools are.
# Viceroy and cargo-installed tools live in ~/.cargo/bin; the Fastly CLI in the project.
export PATH="$HOME/.cargo/bin:$PATH"
FASTLY_CLI_DIR=.tools/fastly-cli
# The CLI's npm package installs the binary for this machine's platform.
case "$(uname -s)" in
  Linux) FASTLY_CLI_OS=linux ;;
  Darwin) FASTLY_CLI_OS=darwin ;;
  MINGW*|MSYS*|CYGWIN*) FASTLY_CLI_OS=win32 ;;
  *) FASTLY_CLI_OS=$(uname -s | tr '[:upper:]' '[:lower:]') ;;
esac
case "$(uname -m)" in
  x86_64|amd64) FASTLY_CLI_ARCH=x64 ;;
  aarch64|arm64) FASTLY_CLI_ARCH=arm64 ;;
  *) FASTLY_CLI_ARCH=$(uname -m) ;;
esac
FASTLY_CLI="$FASTLY_CLI_DIR/node_modules/@fastly/cli-$FASTLY_CLI_OS-$FASTLY_CLI_ARCH/fastly"
