#!/usr/bin/env bash
# The Portcullis client against the MCP TypeScript SDK, both ways round:
#
#  1. `portcullis login / tools / call / token / logout` against the SDK's own OAuth example server
#     (`simpleStreamableHttp.js --oauth --oauth-strict`), whose demo authorization server runs on another port,
#     i.e. another origin than the MCP server. Its demo provider approves every authorization request at once, so
#     the "browser" is tests/support/auto_browser.py in PORTCULLIS_TEST_MODE=redirect (it only follows the loopback
#     redirect to the client's callback). The server is then restarted (it keeps clients and tokens in memory) to
#     check that the client notices its forgotten registration and registers again without a dead-end browser trip.
#  2. `portcullis bridge` driven by a real stdio MCP client (the SDK's `Client` + `StdioClientTransport`,
#     interop/ts-sdk-server/bridge-client.mjs) against `portcullis serve`, after a `portcullis login` through the
#     real login and consent forms (auto_browser.py in its default mode).
#
#   interop/client-vs-ts-sdk.sh
#
# Installs the SDK (exact version, from interop/ts-sdk-server/package-lock.json) into interop/ts-sdk-server/node_modules
# with `npm ci` when missing or out of date, builds `portcullis` (set PORTCULLIS_BIN to use another binary), and
# runs everything on 127.0.0.1 with a temporary PORTCULLIS_HOME and database. Prints PASS/FAIL lines and a summary;
# exits non-zero when anything failed. Needs node >= 18 (the SDK's engines), npm, python3, curl.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/interop/ts-sdk-server"
AUTO_BROWSER="$ROOT/tests/support/auto_browser.py"
STEP_TIMEOUT=60 # seconds, for each client command

passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL: $1"
  failed=$((failed + 1))
  if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/    | /' "$2" | tail -n 25; fi
}
die() { echo "FAIL: $1"; echo "client-vs-ts-sdk: 0 passed, 1 failed (setup)"; exit 1; }

# --- setup ---------------------------------------------------------------------------------------------------------
command -v node >/dev/null || die "node is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node >= 18 is needed by @modelcontextprotocol/sdk (found $(node --version))"
for tool in npm python3 curl; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

# npm ci only when node_modules does not match the committed lock file (the stamp is a copy of the lock it came from).
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
PORTCULLIS_BIN="$(cd "$(dirname "$PORTCULLIS_BIN")" && pwd)/$(basename "$PORTCULLIS_BIN")"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two free ports on 127.0.0.1 (the SDK example takes fixed ports from MCP_PORT and MCP_AUTH_PORT).
read -r MCP_PORT AUTH_PORT < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')

# The example's own URLs name localhost (the protected resource is http://localhost:PORT/mcp), so that is the URL
# the client must use; start-oauth-example.mjs makes it listen on 127.0.0.1 only.
TS_MCP="http://localhost:$MCP_PORT/mcp"
TS_ISSUER="http://localhost:$AUTH_PORT/"
TS_PID=""
start_ts_server() {
  (cd "$HERE" && MCP_PORT="$MCP_PORT" MCP_AUTH_PORT="$AUTH_PORT" exec node start-oauth-example.mjs) \
    >>"$WORK/ts-server.log" 2>&1 &
  TS_PID=$!
  PIDS+=("$TS_PID")
  for _ in $(seq 1 100); do
    if curl -sf --max-time 2 "http://127.0.0.1:$MCP_PORT/.well-known/oauth-protected-resource/mcp" >/dev/null &&
      curl -sf --max-time 2 "http://127.0.0.1:$AUTH_PORT/.well-known/oauth-authorization-server" >/dev/null; then
      return 0
    fi
    kill -0 "$TS_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
stop_ts_server() {
  kill "$TS_PID" 2>/dev/null
  wait "$TS_PID" 2>/dev/null
}

# Runs a portcullis command with a time limit; output in $WORK/out (stdout) and $WORK/err (stderr).
pc() { timeout "$STEP_TIMEOUT" "$PORTCULLIS_BIN" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null; }
both() { cat "$WORK/out" "$WORK/err" >"$WORK/both"; echo "$WORK/both"; }

# --- 1. the SDK's OAuth example server -----------------------------------------------------------------------------
if start_ts_server; then
  pass "ts-sdk: example server up (MCP $TS_MCP, authorization server $TS_ISSUER)"
  # The authorization server is on another origin than the MCP server.
  prm="$(curl -s "http://127.0.0.1:$MCP_PORT/.well-known/oauth-protected-resource/mcp")"
  case "$prm" in
    *"\"authorization_servers\":[\"$TS_ISSUER\"]"*) pass "ts-sdk: resource metadata names the other-origin issuer" ;;
    *) echo "$prm" >"$WORK/prm"; fail "ts-sdk: resource metadata names the other-origin issuer" "$WORK/prm" ;;
  esac
else
  fail "ts-sdk: example server up" "$WORK/ts-server.log"
  echo "client-vs-ts-sdk: $passed passed, $failed failed"
  exit 1
fi

export PORTCULLIS_HOME="$WORK/home-ts"
mkdir -m 700 "$PORTCULLIS_HOME"

if PORTCULLIS_TEST_MODE=redirect BROWSER="$AUTO_BROWSER" pc login "$TS_MCP" &&
  grep -q "Logged in" "$WORK/out" && grep -qF "$TS_ISSUER" "$WORK/out"; then
  pass "ts-sdk: login (discovery, DCR at the other origin, PKCE, loopback callback, code exchange)"
else
  fail "ts-sdk: login" "$(both)"
fi

# From here on no browser may open: the cached token must be used.
if BROWSER=/bin/false pc tools "$TS_MCP" && grep -q "greet" "$WORK/out"; then
  pass "ts-sdk: tools lists greet"
else
  fail "ts-sdk: tools" "$(both)"
fi

if BROWSER=/bin/false pc call "$TS_MCP" greet --args '{"name": "Portcullis"}' &&
  grep -q "Hello, Portcullis!" "$WORK/out"; then
  pass "ts-sdk: call greet"
else
  fail "ts-sdk: call greet" "$(both)"
fi

if BROWSER=/bin/false pc token "$TS_MCP" && [ -n "$(cat "$WORK/out")" ]; then
  token="$(tr -d '\n' <"$WORK/out")"
  # The token works for a client other than ours, and --oauth-strict checks it was issued for this resource.
  code="$(curl -s -o "$WORK/direct" -w '%{http_code}' --max-time 10 -X POST "$TS_MCP" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}')"
  if [ "$code" = 200 ]; then
    pass "ts-sdk: token (accepted by the server when used directly)"
  else
    fail "ts-sdk: token used directly answered HTTP $code" "$WORK/direct"
  fi
else
  fail "ts-sdk: token" "$(both)"
fi

# The example keeps clients and tokens in memory: after a restart both the token and the registration are gone.
# (It then answers the stale token with HTTP 500, not 401: its token verifier throws a plain Error, which the SDK's
# bearer middleware turns into server_error. So the user logs in again.) The authorization endpoint answers the
# forgotten client_id with a 400 invalid_client page instead of redirecting; the client must notice that before
# sending the browser there, and register again, rather than wait for a callback that never comes.
stop_ts_server
if start_ts_server; then
  if PORTCULLIS_TEST_MODE=redirect BROWSER="$AUTO_BROWSER" pc login "$TS_MCP" && grep -q "Logged in" "$WORK/out" &&
    grep -q "registering again" "$WORK/err" &&
    BROWSER=/bin/false pc tools "$TS_MCP" && grep -q "greet" "$WORK/out"; then
    pass "ts-sdk: after a server restart, login registers the forgotten client again"
  else
    fail "ts-sdk: login after the server forgot the client" "$(both)"
  fi
else
  fail "ts-sdk: example server restart" "$WORK/ts-server.log"
fi

if pc logout "$TS_MCP" && grep -q "Logged out" "$WORK/out"; then
  if pc status && ! grep -qF "$TS_MCP" "$WORK/out"; then
    pass "ts-sdk: logout forgets the server"
  else
    fail "ts-sdk: status still lists the server after logout" "$(both)"
  fi
else
  fail "ts-sdk: logout" "$(both)"
fi
stop_ts_server

# --- 2. portcullis bridge driven by the SDK's stdio client ---------------------------------------------------------
export PORTCULLIS_HOME="$WORK/home-bridge"
mkdir -m 700 "$PORTCULLIS_HOME"
DB="sqlite://$WORK/portcullis.db"
USER_NAME=interop
USER_PASSWORD="interop-password-$RANDOM$RANDOM"

if printf %s "$USER_PASSWORD" | timeout "$STEP_TIMEOUT" "$PORTCULLIS_BIN" user add "$USER_NAME" --password-stdin \
  --database "$DB" >"$WORK/out" 2>"$WORK/err"; then
  pass "serve: user added"
else
  fail "serve: user add" "$(both)"
fi

"$PORTCULLIS_BIN" serve --listen 127.0.0.1:0 --database "$DB" >"$WORK/serve.out" 2>"$WORK/serve.log" </dev/null &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
OUR_MCP=""
for _ in $(seq 1 150); do
  OUR_MCP="$(sed -n 's/^mcp endpoint //p' "$WORK/serve.out" | head -n 1)"
  [ -n "$OUR_MCP" ] && break
  kill -0 "$SERVE_PID" 2>/dev/null || break
  sleep 0.2
done
if [ -n "$OUR_MCP" ]; then
  pass "serve: up ($OUR_MCP)"
else
  fail "serve: did not announce its mcp endpoint" "$WORK/serve.log"
fi

if [ -n "$OUR_MCP" ]; then
  if PORTCULLIS_TEST_USER="$USER_NAME" PORTCULLIS_TEST_PASSWORD="$USER_PASSWORD" BROWSER="$AUTO_BROWSER" \
    pc login "$OUR_MCP" && grep -q "Logged in" "$WORK/out"; then
    pass "serve: login through the login and consent forms"
  else
    fail "serve: login" "$(both)"
  fi

  message="hello through the bridge $RANDOM"
  # A warm cache: the bridge must not open a browser.
  if (cd "$HERE" && BROWSER=/bin/false timeout "$STEP_TIMEOUT" node bridge-client.mjs "$PORTCULLIS_BIN" "$OUR_MCP" \
    "$message") >"$WORK/out" 2>"$WORK/err"; then
    pass "bridge: the SDK's stdio client initialized, listed tools and called echo through portcullis bridge"
  else
    fail "bridge: the SDK's stdio client through portcullis bridge" "$(both)"
  fi
fi

echo "client-vs-ts-sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
