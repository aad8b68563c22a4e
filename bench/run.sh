#!/usr/bin/env bash
# Side-by-side load benchmark: Portcullis (release build, SQLite, synchronous=FULL) against a minimal
# node-oidc-provider 9.x configured like it (bench/oidc/server.mjs), loaded with wrk and the Lua scripts in
# bench/lua. See BENCHMARKS.md for what is measured and how to read the table.
#
# Usage: bench/run.sh [--smoke] [--runs N] [--duration S] [--warmup S] [--connections C] [--out FILE] [--no-build]
#   default (full): 3 runs of 10 s per endpoint and server after a 3 s warm-up, 64 connections, table written
#                   to bench/results/latest.md
#   --smoke:        1 run of 2 s per endpoint and server, no warm-up, 16 connections; fails (exit 1) if any
#                   request errors or a server dies. This is what CI runs.
#   --no-build:     use the existing target/release/portcullis.
#   --endpoints L:  only these rows, comma-separated (metadata,dcr,mcp,refresh,revoke,revoke_jwt).
#   --servers L:    only these servers, comma-separated (portcullis,oidc-provider,http-ceiling). http-ceiling is
#                   crates/server/examples/http_ceiling.rs: the same tokio + hyper + axum stack answering the
#                   metadata and tools/list bytes Portcullis answers, with no other work (rows metadata and mcp).
#   --postgres URL: also run Portcullis on PostgreSQL (URL of the server, no database: e.g.
#                   postgres://postgres@127.0.0.1:5432; the database portcullis_bench is dropped and created),
#                   once as one instance (portcullis-pg) and once as two instances on one database
#                   (portcullis-pg-2x, wrk's two threads each on one instance), for the rows that touch storage.
#   --perf DIR:     record a `perf record -g` profile of Portcullis during each measured run into DIR
#                   (needs linux-perf; profiles, not the table, are the point of such a run).
# Environment: PORTCULLIS_BIN=PATH uses that binary instead (no build).
# Loopback only; every wait is bounded; both servers and all temporary files are removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
RUNS=3 DURATION=10 WARMUP=3 CONNS=64 SMOKE=0 BUILD=1 OUT="$BENCH/results/latest.md"
ENDPOINTS="metadata,dcr,mcp,refresh,revoke,revoke_jwt" SERVERS="portcullis,oidc-provider,http-ceiling" PERF_DIR=""
PG_URL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 RUNS=1 DURATION=2 WARMUP=0 CONNS=16 OUT="" SERVERS="portcullis,oidc-provider" ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --endpoints) ENDPOINTS=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --perf) PERF_DIR=$2; shift ;;
    --postgres) PG_URL=${2%/}; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
THREADS=2
[ $((CONNS % THREADS)) -eq 0 ] || { echo "--connections must be a multiple of $THREADS" >&2; exit 2; }

log() { echo "bench: $*" >&2; }

# --- tools -----------------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
command -v node >/dev/null || { log "node is required (Node 20+)"; exit 1; }
if [ ! -d "$BENCH/node_modules/oidc-provider" ]; then
  log "installing oidc-provider and jose into bench/node_modules (pinned by bench/package-lock.json)"
  (cd "$BENCH" && npm ci --no-audit --no-fund --silent)
fi
if [ -n "${PORTCULLIS_BIN:-}" ]; then
  # A prebuilt binary (CI's smoke uses the debug build it already has: the smoke checks that the benchmark
  # works, not how fast the binary is).
  BIN="$PORTCULLIS_BIN"
  log "using $BIN"
else
  if [ "$BUILD" -eq 1 ]; then
    log "building portcullis (release)"
    (cd "$ROOT" && cargo build --release -q -p portcullis --bin portcullis)
    (cd "$ROOT" && cargo build --release -q -p portcullis-server --example http_ceiling)
  fi
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis"
fi

# Server on core 0, wrk on core 1 (when there are two cores).
if [ "$(nproc)" -ge 2 ]; then PIN_SERVER="taskset -c 0" PIN_LOAD="taskset -c 1"; else PIN_SERVER="" PIN_LOAD=""; fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (at most 15 s) for a "listening on http://…" line in $1; prints the URL.
wait_listening() {
  local file=$1 pid=$2
  for _ in $(seq 150); do
    local url
    url=$(grep -o 'listening on http://[0-9.:]*' "$file" 2>/dev/null | head -1 | cut -d' ' -f3 || true)
    [ -n "$url" ] && { echo "$url"; return 0; }
    kill -0 "$pid" 2>/dev/null || { log "server exited: $(tail -5 "$file")"; return 1; }
    sleep 0.1
  done
  log "server did not start in 15 s"; return 1
}

# PID may be a comma-separated list (two instances): CPU ticks are summed, RSS is the largest.
cpu_ticks() { local t=0 p; for p in ${1//,/ }; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss_kib() { local m=0 p v; for p in ${1//,/ }; do v=$(awk -v k="$2" '$1 == k":" {print $2}' "/proc/$p/status"); [ "$v" -gt "$m" ] && m=$v; done; echo "$m"; }
alive() { local p; for p in ${1//,/ }; do kill -0 "$p" 2>/dev/null || return 1; done; }

# --- Portcullis ------------------------------------------------------------------------------------------------
DB="$WORK/portcullis.db"
export BENCH_USER=bench BENCH_PASSWORD=bench-password-1
printf %s "$BENCH_PASSWORD" | "$BIN" user add "$BENCH_USER" --password-stdin --database "sqlite://$DB" >/dev/null 2>&1
start_portcullis() {
  # shellcheck disable=SC2086
  RUST_LOG=warn $PIN_SERVER "$BIN" serve --listen 127.0.0.1:0 --database "sqlite://$DB" \
    --register-per-ip-per-hour 0 >"$WORK/portcullis.out" 2>"$WORK/portcullis.err" &
  P_PID=$!
  PIDS+=("$P_PID")
}
# First start creates the signing key; the second one, on the existing database, is the start-up we time.
start_portcullis
P_URL=$(wait_listening "$WORK/portcullis.out" "$P_PID")
kill "$P_PID"; wait "$P_PID" 2>/dev/null || true
T0=$(date +%s%N)
start_portcullis
P_URL=$(wait_listening "$WORK/portcullis.out" "$P_PID")
READY_MS=""
for _ in $(seq 500); do
  if curl -fsS -o /dev/null "$P_URL/readyz" 2>/dev/null; then READY_MS=$((($(date +%s%N) - T0) / 1000000)); break; fi
  sleep 0.005
done
[ -n "$READY_MS" ] || { log "portcullis never became ready"; exit 1; }
sleep 0.5
P_IDLE_KIB=$(rss_kib "$P_PID" VmRSS)
log "portcullis at $P_URL (ready ${READY_MS} ms after exec, idle RSS ${P_IDLE_KIB} KiB)"

# --- node-oidc-provider ----------------------------------------------------------------------------------------
N_PORT=$(free_port)
# shellcheck disable=SC2086
$PIN_SERVER node "$BENCH/oidc/server.mjs" "$N_PORT" >"$WORK/oidc.out" 2>"$WORK/oidc.err" &
N_PID=$!
PIDS+=("$N_PID")
N_URL=$(wait_listening "$WORK/oidc.out" "$N_PID")
sleep 0.5
N_IDLE_KIB=$(rss_kib "$N_PID" VmRSS)
log "oidc-provider at $N_URL (idle RSS ${N_IDLE_KIB} KiB)"

# --- load ------------------------------------------------------------------------------------------------------
export BENCH_LUA_DIR="$BENCH/lua" BENCH_CONNS_PER_THREAD=$((CONNS / THREADS))
RESULTS="$WORK/results.tsv"
printf 'endpoint\tserver\trun\trps\tp50_us\tp99_us\terrors\tcpu_pct\tpeak_rss_kib\trequests\n' >"$RESULTS"
FAILED=0

# mint KIND URL DIR: a client, one refresh token per connection, two access tokens (MCP, revocation).
mint() {
  python3 "$BENCH/mint_tokens.py" "$1" "$2" $((CONNS + THREADS)) "$3" >/dev/null
  cp "$3/access.txt" "$3/mcp_access.txt"
  python3 "$BENCH/mint_tokens.py" "$1" "$2" 1 "$3/rv" >/dev/null
  cp "$3/rv/access.txt" "$3/revoke_access.txt"
  head -1 "$3/rv/refresh.txt" >"$3/revoke_refresh.txt"
  cp "$3/rv/client_id" "$3/client_id.revoke"
}

# load ENDPOINT SERVER KIND URL PID SECONDS RUN: one wrk run; RUN "warm" is not recorded.
load() {
  local endpoint=$1 server=$2 kind=$3 url=$4 pid=$5 secs=$6 run=$7 dir="$WORK/$2"
  if [ "$endpoint" = refresh ]; then
    # Every run needs fresh refresh tokens: tokens in flight when wrk stops are spent.
    mint "$kind" "$url" "$dir"
  fi
  # shellcheck disable=SC1091
  set -a; . "$dir/endpoints.env"; set +a
  export BENCH_DIR="$dir"
  # Two instances: wrk's threads alternate between the addresses (bench/lua/report.lua).
  BENCH_ADDRS=""
  [ "$server" = portcullis-pg-2x ] && BENCH_ADDRS="${PG2_ADDRS}"
  export BENCH_ADDRS
  cp "$dir/mcp_access.txt" "$dir/access.txt"
  local script=$endpoint
  case "$endpoint" in
    revoke) script=revoke BENCH_REVOKE_HINT=refresh_token ;;
    revoke_jwt) script=revoke BENCH_REVOKE_HINT=access_token ;;
  esac
  export BENCH_REVOKE_HINT
  local c0 out
  c0=$(cpu_ticks "$pid")
  perf_pid=""
  if [ -n "$PERF_DIR" ] && [ "$server" = portcullis ] && [ "$run" != warm ]; then
    mkdir -p "$PERF_DIR"
    # The middle of the run: start after a quarter of it, record half of it.
    (sleep $((secs / 4)); perf record -F 999 ${PERF_CALLGRAPH:--g} -p "$pid" -o "$PERF_DIR/$endpoint-$run.data" -- sleep $((secs / 2 > 0 ? secs / 2 : 1)) >/dev/null 2>&1) &
    perf_pid=$!
  fi
  # shellcheck disable=SC2086
  out=$($PIN_LOAD timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s \
    -s "$BENCH/lua/$script.lua" "$url" 2>&1) || { log "wrk failed: $out"; FAILED=1; return; }
  local c1 line
  if [ -n "${perf_pid:-}" ]; then wait "$perf_pid" 2>/dev/null || true; perf_pid=""; fi
  c1=$(cpu_ticks "$pid")
  if ! alive "$pid"; then log "$server died during $endpoint"; FAILED=1; return; fi
  line=$(echo "$out" | grep '^RESULT ' || true)
  [ -n "$line" ] || { log "no result from wrk: $out"; FAILED=1; return; }
  eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/local r_/')"
  local errs=$((r_errors + r_status_errors))
  local rps cpu
  rps=$(awk -v n="$r_requests" -v us="$r_duration_us" 'BEGIN {printf "%.0f", n / (us / 1e6)}')
  cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v us="$r_duration_us" 'BEGIN {printf "%.0f", 100 * t / hz / (us / 1e6)}')
  log "$endpoint $server run $run: $rps req/s p50 ${r_p50_us} us p99 ${r_p99_us} us errors $errs cpu ${cpu}%"
  if [ "$r_requests" -eq 0 ]; then log "$endpoint on $server: no request completed"; FAILED=1; fi
  if [ "$errs" -gt 0 ]; then
    # The smoke fails on any error; a full run reports them in the table (e.g. wrk's 5 s timeout).
    log "$endpoint on $server: $errs errors in $r_requests requests: $(echo "$out" | grep -v '^RESULT' | grep -i 'revoke:\|error' | head -3)"
    [ "$SMOKE" -eq 1 ] && FAILED=1
  fi
  [ "$run" = warm ] && return
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$endpoint" "$server" "$run" "$rps" "$r_p50_us" "$r_p99_us" \
    "$errs" "$cpu" "$(rss_kib "$pid" VmHWM)" "$r_requests" >>"$RESULTS"
}

wanted() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

# --- Portcullis on PostgreSQL (optional) -----------------------------------------------------------------------
G_URL="" G_PID="" G2_PID="" PG2_ADDRS=""
if [ -n "$PG_URL" ]; then
  psql "$PG_URL/postgres" -qX -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS portcullis_bench' \
    -c 'CREATE DATABASE portcullis_bench' >/dev/null
  PG_DB="$PG_URL/portcullis_bench"
  printf %s "$BENCH_PASSWORD" | "$BIN" user add "$BENCH_USER" --password-stdin --database "$PG_DB" >/dev/null
  # shellcheck disable=SC2086
  RUST_LOG=warn $PIN_SERVER "$BIN" serve --listen 127.0.0.1:0 --database "$PG_DB" --register-per-ip-per-hour 0 \
    >"$WORK/pg-a.out" 2>"$WORK/pg-a.err" &
  G_PID=$!
  PIDS+=("$G_PID")
  G_URL=$(wait_listening "$WORK/pg-a.out" "$G_PID")
  # The second instance shares the database and the issuer (tokens from either are valid at both).
  # shellcheck disable=SC2086
  RUST_LOG=warn $PIN_SERVER "$BIN" serve --listen 127.0.0.1:0 --database "$PG_DB" --register-per-ip-per-hour 0 \
    --issuer "$G_URL" >"$WORK/pg-b.out" 2>"$WORK/pg-b.err" &
  G2_PID=$!
  PIDS+=("$G2_PID")
  G2_URL=$(wait_listening "$WORK/pg-b.out" "$G2_PID")
  PG2_ADDRS="${G_URL#http://} ${G2_URL#http://}"
  SERVERS="$SERVERS,portcullis-pg,portcullis-pg-2x"
  mint portcullis "$G_URL" "$WORK/portcullis-pg"
  mkdir -p "$WORK/portcullis-pg-2x"
  cp "$WORK/portcullis-pg/"*.txt "$WORK/portcullis-pg/endpoints.env" "$WORK/portcullis-pg/client_id"* "$WORK/portcullis-pg-2x/"
  log "portcullis on PostgreSQL at $G_URL and $G2_URL"
fi

wanted "$SERVERS" portcullis && mint portcullis "$P_URL" "$WORK/portcullis"
wanted "$SERVERS" oidc-provider && mint oidc "$N_URL" "$WORK/oidc-provider"
C_URL="" C_PID=""
if wanted "$SERVERS" http-ceiling; then
  # The ceiling answers with exactly the bytes Portcullis answers (fetched now), so only the work differs.
  CEILING_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/http_ceiling"
  [ -x "$CEILING_BIN" ] || { log "$CEILING_BIN is missing: cargo build --release -p portcullis-server --example http_ceiling"; exit 1; }
  mkdir -p "$WORK/http-ceiling"
  cp "$WORK/portcullis/"*.txt "$WORK/portcullis/endpoints.env" "$WORK/http-ceiling/"
  curl -fsS "$P_URL/.well-known/oauth-authorization-server" -o "$WORK/ceiling-get.json"
  curl -fsS "$P_URL/mcp" -H 'Content-Type: application/json' -H "Authorization: Bearer $(cat "$WORK/portcullis/mcp_access.txt")" \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}' -o "$WORK/ceiling-post.json"
  # shellcheck disable=SC2086
  $PIN_SERVER "$CEILING_BIN" "$WORK/ceiling-get.json" "$WORK/ceiling-post.json" >"$WORK/ceiling.out" 2>&1 &
  C_PID=$!
  PIDS+=("$C_PID")
  C_URL=$(wait_listening "$WORK/ceiling.out" "$C_PID")
  log "http-ceiling at $C_URL"
fi
CHECKS=0
for endpoint in metadata dcr mcp refresh revoke revoke_jwt; do
  wanted "$ENDPOINTS" "$endpoint" || continue
  for spec in "portcullis portcullis $P_URL $P_PID" "oidc-provider oidc $N_URL $N_PID" "http-ceiling ceiling $C_URL $C_PID" \
    "portcullis-pg portcullis $G_URL $G_PID" "portcullis-pg-2x portcullis $G_URL $G_PID,$G2_PID"; do
    wanted "$SERVERS" "${spec%% *}" || continue
    # The ceiling only has the two rows whose bytes it can answer.
    [ "${spec%% *}" = http-ceiling ] && [ "$endpoint" != metadata ] && [ "$endpoint" != mcp ] && continue
    # The PostgreSQL passes skip the one row that never touches storage.
    case "${spec%% *}" in portcullis-pg*) [ "$endpoint" = metadata ] && continue ;; esac
    # oidc-provider cannot revoke JWT access tokens (unsupported_token_type): that row is Portcullis only.
    [ "$endpoint" = revoke_jwt ] && [ "${spec%% *}" = oidc-provider ] && continue
    CHECKS=$((CHECKS + 1))
    # shellcheck disable=SC2086
    set -- $spec
    [ "$WARMUP" -gt 0 ] && load "$endpoint" "$1" "$2" "$3" "$4" "$WARMUP" warm
    for run in $(seq "$RUNS"); do load "$endpoint" "$1" "$2" "$3" "$4" "$DURATION" "$run"; done
  done
done

for spec in "portcullis $P_PID" "oidc-provider $N_PID"; do
  # shellcheck disable=SC2086
  set -- $spec
  kill -0 "$2" 2>/dev/null || { log "$1 is not running at the end"; FAILED=1; }
done

if [ -n "$OUT" ]; then
  python3 "$BENCH/report.py" "$RESULTS" --ready-ms "$READY_MS" --idle-kib "portcullis=$P_IDLE_KIB" \
    --idle-kib "oidc-provider=$N_IDLE_KIB" --runs "$RUNS" --duration "$DURATION" --connections "$CONNS" >"$OUT"
  log "table written to $OUT"
  cat "$OUT"
fi
if [ "$FAILED" -ne 0 ]; then log "FAILED"; exit 1; fi
if [ "$SMOKE" -eq 1 ]; then echo "bench smoke: $CHECKS passed, 0 failed"; fi
log "ok"
