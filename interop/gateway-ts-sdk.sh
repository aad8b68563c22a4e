#!/usr/bin/env bash
# Gateway mode in front of the MCP TypeScript SDK's own example Streamable HTTP server (`simpleStreamableHttp.js`
# from @modelcontextprotocol/sdk, exact version in interop/ts-sdk-server/package-lock.json, run without its own
# OAuth on 127.0.0.1), behind `portcullis serve --upstream … --upstream-identity-jwt --hide-unauthorized-tools
# --tool-scope list-files=mcp:admin`, reached by:
#
#  1. the SDK's client with OAuth (interop/ts-sdk-server/gateway-client.mjs): discovery from the gateway's 401,
#     dynamic registration, PKCE, login and consent through Portcullis's real forms (tests/support/auto_browser.py),
#     tools/list without the hidden tool, `greet`, `multi-greet` and `start-notification-stream`, whose logging
#     notifications must arrive over SSE one by one before the result;
#  2. `portcullis login / tools / call` through the same gateway, including the step-up to mcp:admin after which
#     the hidden tool is callable and listed.
#
#   interop/gateway-ts-sdk.sh
#
# Prints PASS/FAIL lines and a summary; exits non-zero when anything failed. Needs node >= 18, npm, python3, curl.
# Set PORTCULLIS_BIN to use a prebuilt binary.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/interop/ts-sdk-server"
AUTO_BROWSER="$ROOT/tests/support/auto_browser.py"
STEP_TIMEOUT=60
USER_NAME=alice
USER_PASSWORD="correct horse battery staple"
HIDDEN=list-files

passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL: $1"
  failed=$((failed + 1))
  if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/    | /' "$2" | tail -n 25; fi
}
die() { echo "FAIL: $1"; echo "gateway-ts-sdk: 0 passed, 1 failed (setup)"; exit 1; }

# --- setup ---------------------------------------------------------------------------------------------------------
command -v node >/dev/null || die "node is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node >= 18 is needed by @modelcontextprotocol/sdk (found $(node --version))"
for tool in npm python3 curl; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

# The same install as client-vs-ts-sdk.sh: npm ci only when node_modules does not match the committed lock file.
STAMP="$HERE/node_modules/.portcullis-installed-lock.json"
if ! cmp -s "$HERE/package-lock.json" "$STAMP"; then
  echo "installing the MCP TypeScript SDK into $HERE/node_modules" >&2
  (cd "$HERE" && timeout 300 npm ci --silent --no-audit --no-fund >&2) || die "npm ci in $HERE failed"
  cp "$HERE/package-lock.json" "$STAMP"
fi
sdk_version="$(node -p "require('$HERE/node_modules/@modelcontextprotocol/sdk/package.json').version")"
echo "MCP TypeScript SDK $sdk_version, node $(node --version)"

if [ -z "${PORTCULLIS_BIN:-}" ]; then
  (cd "$ROOT" && timeout 900 cargo build --quiet -p portcullis) || die "cargo build -p portcullis failed"
  PORTCULLIS_BIN="$ROOT/target/debug/portcullis"
fi
[ -x "$PORTCULLIS_BIN" ] || die "no portcullis binary at $PORTCULLIS_BIN"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

UP_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
UPSTREAM="http://127.0.0.1:$UP_PORT/mcp"
(cd "$HERE" && MCP_PORT="$UP_PORT" exec node start-example.mjs) >"$WORK/example.log" 2>&1 &
PIDS+=("$!")
up=""
for _ in $(seq 1 100); do
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "$UPSTREAM" || true)"
  if [ "$code" != "000" ]; then up=1; break; fi
  sleep 0.2
done
[ -n "$up" ] || { fail "SDK example server up" "$WORK/example.log"; die "the SDK example server did not start"; }
pass "SDK example server (simpleStreamableHttp.js, no OAuth of its own) up on $UPSTREAM"

DB="sqlite://$WORK/portcullis.db"
printf %s "$USER_PASSWORD" | "$PORTCULLIS_BIN" user add "$USER_NAME" --password-stdin --database "$DB" >/dev/null ||
  die "user add failed"
"$PORTCULLIS_BIN" serve --listen 127.0.0.1:0 --database "$DB" --upstream "$UPSTREAM" \
  --upstream-identity-jwt --hide-unauthorized-tools --tool-scope "$HIDDEN=mcp:admin" \
  >"$WORK/serve.out" 2>"$WORK/serve.log" &
PIDS+=("$!")
MCP=""
for _ in $(seq 1 150); do
  MCP="$(sed -n 's/^mcp endpoint //p' "$WORK/serve.out")"
  [ -n "$MCP" ] && break
  sleep 0.2
done
[ -n "$MCP" ] || { fail "portcullis serve --upstream" "$WORK/serve.log"; die "the gateway did not start"; }
pass "gateway up: $MCP -> $UPSTREAM"

# --- 1. the SDK's client, with OAuth through the gateway ------------------------------------------------------------
if (cd "$HERE" && AUTO_BROWSER="$AUTO_BROWSER" PORTCULLIS_TEST_USER="$USER_NAME" \
  PORTCULLIS_TEST_PASSWORD="$USER_PASSWORD" HIDDEN_TOOL="$HIDDEN" \
  timeout 90 node gateway-client.mjs "$MCP") >"$WORK/sdk-client" 2>&1; then
  pass "SDK client: OAuth login through the gateway, tools/list without $HIDDEN, notifications streamed over SSE"
  sed 's/^/    /' "$WORK/sdk-client" | grep -v '^    $'
else
  fail "SDK client through the gateway" "$WORK/sdk-client"
fi

# --- 2. portcullis itself -------------------------------------------------------------------------------------------
pc() { timeout "$STEP_TIMEOUT" "$PORTCULLIS_BIN" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null; }
both() { cat "$WORK/out" "$WORK/err" >"$WORK/both"; echo "$WORK/both"; }
export PORTCULLIS_HOME="$WORK/home"
mkdir -m 700 "$PORTCULLIS_HOME"
export PORTCULLIS_TEST_USER="$USER_NAME" PORTCULLIS_TEST_PASSWORD="$USER_PASSWORD"

if BROWSER="$AUTO_BROWSER" pc login "$MCP" && grep -q "Logged in" "$WORK/out"; then
  pass "portcullis login through the gateway"
else
  fail "portcullis login" "$(both)"
fi

if BROWSER=/bin/false pc tools "$MCP" && grep -q "multi-greet" "$WORK/out" && ! grep -q "$HIDDEN" "$WORK/out"; then
  pass "portcullis tools: the example's tools, without $HIDDEN"
else
  fail "portcullis tools" "$(both)"
fi

if BROWSER=/bin/false pc call "$MCP" multi-greet --args '{"name": "portcullis"}' &&
  grep -q "Good morning, portcullis" "$WORK/out"; then
  pass "portcullis call multi-greet (answered over SSE)"
else
  fail "portcullis call multi-greet" "$(both)"
fi

# The hidden tool exists: calling it steps up to mcp:admin (the test browser approves), and then it is listed.
if BROWSER="$AUTO_BROWSER" pc call "$MCP" "$HIDDEN" && grep -q "available files" "$WORK/out"; then
  pass "portcullis call $HIDDEN steps up to mcp:admin and succeeds"
else
  fail "portcullis call $HIDDEN after step-up" "$(both)"
fi
if BROWSER=/bin/false pc tools "$MCP" && grep -q "$HIDDEN" "$WORK/out"; then
  pass "portcullis tools with mcp:admin: $HIDDEN is listed"
else
  fail "portcullis tools with mcp:admin" "$(both)"
fi

if BROWSER=/bin/false pc logout "$MCP" && grep -q "Logged out" "$WORK/out"; then
  pass "portcullis logout"
else
  fail "portcullis logout" "$(both)"
fi

if grep -qE 'panicked|ERROR' "$WORK/serve.log"; then
  fail "the gateway's log has errors" "$WORK/serve.log"
else
  pass "no errors in the gateway's log"
fi

echo "gateway-ts-sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
