#!/usr/bin/env bash
# The client under test for `client-conformance-2026.sh`: the plain `portcullis` binary, driven by what the suite
# hands every run (MCP conformance 0.2.0-alpha.12).
#
#   PORTCULLIS=path/to/portcullis conformance-2026-client.sh SERVER_URL
#
# Reads MCP_CONFORMANCE_CONTEXT and MCP_CONFORMANCE_SCENARIO:
# - `client_id`/`client_secret` in the context: `portcullis login --client-id … --client-secret-stdin`; otherwise
#   `portcullis login` with a Client ID Metadata Document URL the suite's mock accepts. A server with nothing to
#   log in to ("did not ask for authorization") is fine.
# - `toolCalls` in the context: `portcullis call URL NAME --args JSON` for each.
# - `json-schema-2020-12-preservation`: the focal tool's inputSchema, exactly as `portcullis tools --json` prints
#   it, is passed back through the scenario's echo tool.
# - otherwise: `portcullis tools --json`, then `portcullis call` of every listed tool with arguments made from its
#   schema. `sep-2322-client-request-state` answers its confirmation elicitation with --input-responses.
# The browser ($BROWSER) is a headless GET that follows the mock authorization server's redirect to the loopback
# callback. Credentials live in a fresh PORTCULLIS_HOME per run. Exits non-zero when a command fails.
set -euo pipefail
url="${*: -1}"
P="${PORTCULLIS:?set PORTCULLIS to the portcullis binary}"
PORTCULLIS_HOME="$(mktemp -d)"
export PORTCULLIS_HOME
trap 'rm -rf "$PORTCULLIS_HOME"' EXIT
BROWSER="$PORTCULLIS_HOME/browser"
printf '#!/bin/sh\nexec curl -s -L -o /dev/null --max-time 20 "$1"\n' >"$BROWSER"
chmod +x "$BROWSER"
export BROWSER
ctx="${MCP_CONFORMANCE_CONTEXT:-{\}}"
scenario="${MCP_CONFORMANCE_SCENARIO:-}"

# field NAME: a top-level string of the context, or nothing.
field() { node -e 'const c=JSON.parse(process.argv[1]); const v=c[process.argv[2]]; if (typeof v === "string") process.stdout.write(v)' "$ctx" "$1"; }

client_id="$(field client_id)"
set +e
if [ -n "$client_id" ]; then
  out="$(printf %s "$(field client_secret)" | "$P" login "$url" --client-id "$client_id" --client-secret-stdin 2>&1)"
else
  out="$("$P" login "$url" --client-metadata-url https://conformance-test.local/client-metadata.json 2>&1)"
fi
rc=$?
set -e
echo "$out" >&2
if [ "$rc" -ne 0 ] && ! grep -q "did not ask for authorization" <<<"$out"; then
  exit "$rc"
fi

status=0
call() { # call NAME ARGS [MORE…]
  local name="$1" args="$2"
  shift 2
  echo "calling $name $args" >&2
  "$P" call "$url" "$name" --args "$args" "$@" || status=1
}

calls="$(node -e 'const c=JSON.parse(process.argv[1]); for (const t of c.toolCalls ?? []) console.log(JSON.stringify([t.name, t.arguments ?? {}]))' "$ctx")"
if [ -n "$calls" ]; then
  while IFS= read -r pair; do
    name="$(node -e 'process.stdout.write(JSON.parse(process.argv[1])[0])' "$pair")"
    args="$(node -e 'process.stdout.write(JSON.stringify(JSON.parse(process.argv[1])[1]))' "$pair")"
    call "$name" "$args"
  done <<<"$calls"
  exit "$status"
fi

tools="$("$P" tools "$url" --json)"
if [ "$scenario" = json-schema-2020-12-preservation ]; then
  args="$(node -e 'const ts=JSON.parse(process.argv[1]); const t=ts.find(t => t.name === "json_schema_2020_12_tool"); process.stdout.write(JSON.stringify({schema: t.inputSchema}))' "$tools")"
  call json_schema_echo "$args"
  exit "$status"
fi
extra=()
if [ "$scenario" = sep-2322-client-request-state ]; then
  extra=(--input-responses '{"confirm": {"action": "accept", "content": {"confirmed": true}}}')
fi
# One line per tool: [name, arguments made from its inputSchema].
plan="$(node -e '
const ts = JSON.parse(process.argv[1]);
for (const t of ts) {
  const args = {};
  const props = (t.inputSchema && t.inputSchema.properties) || {};
  Object.entries(props).forEach(([k, p], i) => {
    const ty = p && p.type;
    args[k] = ty === "number" || ty === "integer" ? i + 1 : ty === "boolean" ? true : ty === "array" ? [] : ty === "object" ? {} : "test";
  });
  console.log(JSON.stringify([t.name, args]));
}' "$tools")"
# A tool the server itself fails (its own error, not the client's) does not fail the run: the scenario's checks
# judge what the client sent.
while IFS= read -r pair; do
  [ -n "$pair" ] || continue
  name="$(node -e 'process.stdout.write(JSON.parse(process.argv[1])[0])' "$pair")"
  args="$(node -e 'process.stdout.write(JSON.stringify(JSON.parse(process.argv[1])[1]))' "$pair")"
  echo "calling $name $args" >&2
  "$P" call "$url" "$name" --args "$args" "${extra[@]}" || echo "(the call of $name failed; going on)" >&2
done <<<"$plan"
exit "$status"
