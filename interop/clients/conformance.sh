#!/usr/bin/env bash
# The authorization-server scenarios of @modelcontextprotocol/conformance (0.2.0 alpha line, Node 22):
# `authorization-server-metadata-endpoint` and `authorization-code-grant`. The client is registered first (RFC
# 7591, public, redirect URI http://127.0.0.1:PORT/callback as the suite requires); the suite prints the
# authorization URL and waits on its callback, and the headless browser logs in and approves through the real
# forms. Fails unless every check of both scenarios is SUCCESS.
#
#   NODE=path/to/node22 conformance.sh ISSUER MCP_URL
set -euo pipefail
issuer="$1"
resource="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"; [ -n "${suite:-}" ] && kill "$suite" 2>/dev/null || true' EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redirect="http://127.0.0.1:$port/callback"
registration="$(curl -sS --fail-with-body -H 'content-type: application/json' \
  -d "{\"client_name\":\"interop: conformance\",\"redirect_uris\":[\"$redirect\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"]}" \
  "$issuer/register")"
client_id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$registration")"

"$NODE" "$here/node_modules/@modelcontextprotocol/conformance/dist/index.js" authorization \
  --url "$issuer" --client-id "$client_id" --resource "$resource" --port "$port" \
  --output-dir "$out/results" >"$out/suite.log" 2>&1 &
suite=$!

# The suite prints the authorization URL on a line of its own; hand it to the browser.
url=""
for _ in $(seq 300); do
  url="$(grep -m1 -E "^$issuer/authorize\?" "$out/suite.log" || true)"
  [ -n "$url" ] && break
  kill -0 "$suite" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$url" ]; then
  "$AUTO_BROWSER" "$url" || echo "error: auto_browser failed"
else
  echo "error: the suite printed no authorization URL"
fi
status=0
wait "$suite" || status=$?
suite=""
cat "$out/suite.log"
[ "$status" -eq 0 ] || { echo "error: the conformance suite exited $status"; exit 1; }
# Every check of the two scenarios must be a SUCCESS (not merely "not failed"), read from the saved results.
python3 - "$out/results" <<'PY'
import json, pathlib, sys
results = pathlib.Path(sys.argv[1])
seen = {}
for f in sorted(results.rglob("*.json")):
    data = json.loads(f.read_text())
    for check in data if isinstance(data, list) else data.get("checks", []):
        if isinstance(check, dict) and "status" in check:
            seen.setdefault(f.parent.name, []).append((check.get("id"), check["status"], check.get("errorMessage")))
for scenario, checks in seen.items():
    print(scenario, checks)
for needed in ("authorization-server-metadata-endpoint", "authorization-code-grant"):
    runs = [c for s, cs in seen.items() if s.startswith(f"authorization-server-{needed}-") for c in cs]
    if not runs:
        print(f"error: no checks recorded for {needed}"); sys.exit(1)
    bad = [c for c in runs if c[1] != "SUCCESS"]
    if bad:
        print(f"error: {needed}: {bad}"); sys.exit(1)
PY
