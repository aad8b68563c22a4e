// The MCP TypeScript SDK client (@modelcontextprotocol/sdk) over Streamable HTTP, with an OAuthClientProvider
// whose redirectToAuthorization hands the URL to the headless browser; the loopback callback server receives
// the code and transport.finishAuth(code) exchanges it. Then tools/list and whoami; then, past the access
// token's lifetime, another call that the SDK must make work by refreshing on its own.
//
//   node sdk.mjs MCP_URL
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { BrowserProvider, callbackServer, pastExpiry, run, text } from "./common.mjs";

async function connect(url, provider) {
  const client = new Client({ name: "portcullis-interop-sdk", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  return client;
}

run(async () => {
  const url = process.argv[2];
  const callback = await callbackServer();
  const provider = new BrowserProvider(callback.url, "interop: MCP TypeScript SDK");
  let client;
  try {
    client = await connect(url, provider);
    throw new Error("connected without authorization");
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!provider.browser) throw new Error("the SDK never asked to open the browser");
  const redirected = await callback.result;
  await provider.browser;
  const code = redirected.searchParams.get("code");
  if (!code) throw new Error(`no code in the callback: ${redirected}`);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await transport.finishAuth(code);
  client = new Client({ name: "portcullis-interop-sdk", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  if (!tools.some((t) => t.name === "whoami")) throw new Error("whoami is not listed");
  const who = text(await client.callTool({ name: "whoami", arguments: {} }));
  if (!JSON.parse(who).sub) throw new Error(`whoami said ${who}`);
  await pastExpiry();
  const echoed = text(await client.callTool({ name: "echo", arguments: { message: "after expiry" } }));
  if (!echoed.includes("after expiry")) throw new Error(`echo said ${echoed}`);
  if (provider.refreshes < 1) throw new Error("no refresh happened after the access token expired");
  await client.close();
  callback.close();
});
