"""The Python `mcp` package's OAuth client (mcp.client.auth.OAuthClientProvider) over Streamable HTTP.

Its redirect handler hands the authorization URL to the headless browser (tests/support/auto_browser.py), which
logs in and approves through Portcullis's real forms; a loopback callback server on 127.0.0.1 receives the code,
state and iss, which the callback handler returns. Then tools/list and whoami; then, past the access token's
lifetime, another call that the SDK must make work by refreshing on its own.

    python python_sdk.py MCP_URL
"""

import asyncio
import http.server
import json
import os
import sys
import threading
import urllib.parse

from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

TTL = int(os.environ.get("ACCESS_TOKEN_TTL", "15"))


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None
        self.saves = 0

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.saves += 1
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


class Callback:
    """A one-shot loopback listener for the authorization response (RFC 8252 §7.3)."""

    def __init__(self):
        self.params = None
        self.event = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/callback":
                    self.send_error(404)
                    return
                outer.params = dict(urllib.parse.parse_qsl(url.query))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"You can close this window.")
                outer.event.set()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def text(result):
    if result.is_error:
        raise RuntimeError(f"tool error: {result.content}")
    return "".join(getattr(c, "text", "") for c in result.content)


async def main(url):
    callback = Callback()
    storage = MemoryStorage()
    browsers = []

    async def redirect_handler(authorization_url: str) -> None:
        browsers.append(await asyncio.create_subprocess_exec(os.environ["AUTO_BROWSER"], authorization_url))

    async def callback_handler() -> AuthorizationCodeResult:
        got = await asyncio.to_thread(callback.event.wait, 120)
        if not got or "code" not in callback.params:
            raise RuntimeError(f"no authorization code arrived: {callback.params}")
        if browsers and await browsers[-1].wait() != 0:
            raise RuntimeError("auto_browser failed")
        p = callback.params
        return AuthorizationCodeResult(code=p["code"], state=p.get("state"), iss=p.get("iss"))

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="interop: Python mcp SDK",
            redirect_uris=[callback.url],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with create_mcp_http_client(auth=provider) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = await client.list_tools()
            if not any(t.name == "whoami" for t in tools.tools):
                raise RuntimeError("whoami is not listed")
            who = text(await client.call_tool("whoami", {}))
            if not json.loads(who).get("sub"):
                raise RuntimeError(f"whoami said {who}")
            if not browsers:
                raise RuntimeError("the SDK never opened the browser")
            first = storage.tokens.access_token
            await asyncio.sleep(TTL + 3)
            echoed = text(await client.call_tool("echo", {"message": "after expiry"}))
            if "after expiry" not in echoed:
                raise RuntimeError(f"echo said {echoed}")
            if storage.tokens.access_token == first:
                raise RuntimeError("the SDK did not refresh the expired access token")
    if len(browsers) != 1:
        raise RuntimeError(f"the browser opened {len(browsers)} times (a refresh must not need it)")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except BaseException as e:  # noqa: BLE001 - report any failure as one line
        import traceback

        traceback.print_exc()
        print(f"error: {e!r}", file=sys.stderr)
        sys.exit(1)
