#!/usr/bin/env bash
# The `portcullis` client itself: `login` through the headless browser ($BROWSER), `tools`, `call whoami`, then,
# past the access token's lifetime, `call echo` with no browser available: it must refresh by itself.
#
#   PORTCULLIS=path/to/portcullis portcullis.sh MCP_URL
set -euo pipefail
url="$1"
PORTCULLIS_HOME="$(mktemp -d)"
export PORTCULLIS_HOME
trap 'rm -rf "$PORTCULLIS_HOME"' EXIT

BROWSER="$AUTO_BROWSER" "$PORTCULLIS" login "$url"
# From here on no browser may open.
export BROWSER=/bin/false
tools="$("$PORTCULLIS" tools "$url")"
echo "$tools"
grep -q whoami <<<"$tools" || { echo "error: whoami is not listed"; exit 1; }
who="$("$PORTCULLIS" call "$url" whoami)"
echo "$who"
grep -q '"sub"' <<<"$who" || { echo "error: whoami said $who"; exit 1; }
before="$("$PORTCULLIS" token "$url")"
sleep $((ACCESS_TOKEN_TTL + 3))
echoed="$("$PORTCULLIS" call "$url" echo --args '{"message":"after expiry"}')"
echo "$echoed"
grep -q 'after expiry' <<<"$echoed" || { echo "error: echo said $echoed"; exit 1; }
after="$("$PORTCULLIS" token "$url")"
[ "$before" != "$after" ] || { echo "error: the access token was not refreshed"; exit 1; }
