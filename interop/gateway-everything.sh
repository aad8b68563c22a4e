#!/usr/bin/env bash
# Gateway mode in front of an MCP server nobody here wrote: `@modelcontextprotocol/server-everything` (npm, exact
# version in interop/gateway-everything/package-lock.json) in Streamable HTTP mode on 127.0.0.1, behind
# `portcullis serve --upstream http://127.0.0.1:PORT/mcp --tool-scope get-env=mcp:admin`, reached by `portcullis`
# itself through a real login (tests/support/auto_browser.py as $BROWSER, through the real login and consent forms).
#
#   interop/gateway-everything.sh
#
# Checks: 401 challenge from the gateway; login; tools; call echo; a long-running tool's progress notifications
# arrive over SSE one by one, before the result (no buffering in the gateway); the per-tool scope answers 403
# insufficient_scope; `portcullis call get-env` steps up to mcp:admin and succeeds; alice's session id replayed
# with bob's token is refused; logout. Prints PASS/FAIL lines and a summary; exits non-zero when anything
# failed. Needs node >= 20, npm, python3, curl. Set PORTCULLIS_BIN to use a prebuilt binary.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/interop/gateway-everything"
AUTO_BROWSER="$ROOT/tests/support/auto_browser.py"
STEP_TIMEOUT=60
USER_NAME=alice
USER_PASSWORD="correct horse battery staple"

passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL: $1"
  failed=$((failed + 1))
  if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/    | /' "$2" | tail -n 25; fi
}
die() { echo "FAIL: $1"; echo "gateway-everything: 0 passed, 1 failed (setup)"; exit 1; }

# --- setup ---------------------------------------------------------------------------------------------------------
command -v node >/dev/null || die "node is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node >= 20 is needed by server-everything's dependencies (found $(node --version))"
for tool in npm python3 curl; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

STAMP="$HERE/node_modules/.portcullis-installed-lock.json"
if ! cmp -s "$HERE/package-lock.json" "$STAMP"; then
  echo "installing @modelcontextprotocol/server-everything into $HERE/node_modules" >&2
  (cd "$HERE" && timeout 300 npm ci --silent --no-audit --no-fund >&2) || die "npm ci in $HERE failed"
  cp "$HERE/package-lock.json" "$STAMP"
fi
ev_version="$(node -p "require('$HERE/node_modules/@modelcontextprotocol/server-everything/package.json').version")"
echo "server-everything $ev_version, node $(node --version)"

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
(cd "$HERE" && PORT="$UP_PORT" exec node start-everything.mjs) >"$WORK/everything.log" 2>&1 &
PIDS+=("$!")
up=""
for _ in $(seq 1 100); do
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "$UPSTREAM" || true)"
  if [ "$code" != "000" ]; then up=1; break; fi
  sleep 0.2
done
[ -n "$up" ] || { fail "server-everything up" "$WORK/everything.log"; die "server-everything did not start"; }
pass "server-everything up on $UPSTREAM"

DB="sqlite://$WORK/portcullis.db"
printf %s "$USER_PASSWORD" | "$PORTCULLIS_BIN" user add "$USER_NAME" --password-stdin --database "$DB" >/dev/null ||
  die "user add failed"
"$PORTCULLIS_BIN" serve --listen 127.0.0.1:0 --database "$DB" --upstream "$UPSTREAM" \
  --tool-scope get-env=mcp:admin >"$WORK/serve.out" 2>"$WORK/serve.log" &
PIDS+=("$!")
MCP=""
for _ in $(seq 1 150); do
  MCP="$(sed -n 's/^mcp endpoint //p' "$WORK/serve.out")"
  [ -n "$MCP" ] && break
  sleep 0.2
done
[ -n "$MCP" ] || { fail "portcullis serve --upstream" "$WORK/serve.log"; die "the gateway did not start"; }
pass "gateway up: $MCP -> $UPSTREAM"

pc() { timeout "$STEP_TIMEOUT" "$PORTCULLIS_BIN" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null; }
both() { cat "$WORK/out" "$WORK/err" >"$WORK/both"; echo "$WORK/both"; }
export PORTCULLIS_HOME="$WORK/home"
mkdir -m 700 "$PORTCULLIS_HOME"
export PORTCULLIS_TEST_USER="$USER_NAME" PORTCULLIS_TEST_PASSWORD="$USER_PASSWORD"

# --- checks --------------------------------------------------------------------------------------------------------
curl -s -i -X POST "$MCP" -H 'content-type: application/json' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$WORK/unauth"
if head -1 "$WORK/unauth" | grep -q " 401" && grep -qi '^www-authenticate: Bearer .*resource_metadata=' "$WORK/unauth"; then
  pass "no token: 401 with a resource_metadata challenge"
else
  fail "no token: 401 with a resource_metadata challenge" "$WORK/unauth"
fi

if BROWSER="$AUTO_BROWSER" pc login "$MCP" && grep -q "Logged in" "$WORK/out"; then
  pass "login through the gateway's challenge, real login and consent forms"
else
  fail "login" "$(both)"
fi

if BROWSER=/bin/false pc tools "$MCP" && grep -q "echo" "$WORK/out" &&
  grep -q "trigger-long-running-operation" "$WORK/out"; then
  pass "tools lists server-everything's tools"
else
  fail "tools" "$(both)"
fi

if BROWSER=/bin/false pc call "$MCP" echo --args '{"message": "through the gateway"}' &&
  grep -q "through the gateway" "$WORK/out"; then
  pass "call echo"
else
  fail "call echo" "$(both)"
fi

TOKEN=""
if BROWSER=/bin/false pc token "$MCP"; then TOKEN="$(tr -d '\n' <"$WORK/out")"; fi
[ -n "$TOKEN" ] && pass "token" || fail "token" "$(both)"

# Progress notifications of a 3-step, 3-second operation, read as they arrive: the first must come well before
# the result (a buffering gateway would deliver them all at once at the end).
MCP="$MCP" TOKEN="$TOKEN" timeout 60 python3 - >"$WORK/stream" 2>&1 <<'PY'
import http.client, json, os, sys, time, urllib.parse
url = urllib.parse.urlsplit(os.environ["MCP"])
def post(body, session=None):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    h = {"Authorization": "Bearer " + os.environ["TOKEN"], "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    if session:
        h["Mcp-Session-Id"] = session
    c.request("POST", url.path, json.dumps(body), h)
    return c.getresponse()
r = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
          "capabilities": {}, "clientInfo": {"name": "gateway-everything", "version": "0"}}})
session = r.getheader("mcp-session-id"); r.read()
assert r.status == 200 and session, (r.status, session)
r = post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session); r.read()
start = time.monotonic()
r = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "trigger-long-running-operation",
          "arguments": {"duration": 3, "steps": 3}, "_meta": {"progressToken": "p1"}}}, session)
assert r.status == 200 and r.getheader("content-type", "").startswith("text/event-stream"), r.status
progress, result_at = [], None
while result_at is None:
    line = r.readline()
    if not line:
        break
    if line.startswith(b"data:"):
        msg = json.loads(line[5:])
        t = time.monotonic() - start
        if msg.get("method") == "notifications/progress":
            progress.append(t)
        elif msg.get("id") == 2:
            result_at = t
            assert "completed" in json.dumps(msg), msg
print("progress at", [round(p, 2) for p in progress], "result at", result_at)
assert len(progress) >= 2, "expected progress notifications"
assert result_at is not None, "no result"
assert result_at - progress[0] >= 1.0, "the first progress event did not arrive before the result: buffered?"
print("session", session)
PY
if [ "$?" -eq 0 ]; then
  pass "long-running tool: progress notifications streamed one by one before the result ($(head -1 "$WORK/stream"))"
else
  fail "long-running tool: progress streamed over SSE" "$WORK/stream"
fi
SESSION="$(sed -n 's/^session //p' "$WORK/stream")"

curl -s -i -X POST "$MCP" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-env","arguments":{}}}' >"$WORK/scope"
if head -1 "$WORK/scope" | grep -q " 403" && grep -qi 'error="insufficient_scope"' "$WORK/scope" &&
  grep -qi 'scope="mcp:admin"' "$WORK/scope"; then
  pass "per-tool scope: get-env without mcp:admin is 403 insufficient_scope"
else
  fail "per-tool scope: get-env without mcp:admin" "$WORK/scope"
fi

if BROWSER="$AUTO_BROWSER" pc call "$MCP" get-env && grep -q "PATH" "$WORK/out"; then
  pass "call get-env steps up to mcp:admin and succeeds"
else
  fail "call get-env after step-up" "$(both)"
fi

# Another user's token (bob, a second login with its own PORTCULLIS_HOME) cannot use alice's session.
if [ -n "$SESSION" ]; then
  printf %s "bob's long password" | "$PORTCULLIS_BIN" user add bob --password-stdin --database "$DB" >/dev/null
  if PORTCULLIS_HOME="$WORK/home2" PORTCULLIS_TEST_USER=bob PORTCULLIS_TEST_PASSWORD="bob's long password" \
    BROWSER="$AUTO_BROWSER" pc login "$MCP" &&
    PORTCULLIS_HOME="$WORK/home2" BROWSER=/bin/false pc token "$MCP"; then
    OTHER="$(tr -d '\n' <"$WORK/out")"
    code="$(curl -s -o "$WORK/replay" -w '%{http_code}' -X POST "$MCP" -H "authorization: Bearer $OTHER" \
      -H "mcp-session-id: $SESSION" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":4,"method":"tools/list"}')"
    [ "$code" = "404" ] && pass "alice's session replayed with bob's token: 404" ||
      fail "alice's session replayed with bob's token: got $code" "$WORK/replay"
  else
    fail "second login" "$(both)"
  fi
else
  fail "session replay check (no session id from the streaming check)"
fi

if BROWSER=/bin/false pc logout "$MCP" && grep -q "Logged out" "$WORK/out"; then
  pass "logout"
else
  fail "logout" "$(both)"
fi

echo "gateway-everything: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
