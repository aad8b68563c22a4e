// The MCP TypeScript SDK v2 client (@modelcontextprotocol/client) over Streamable HTTP with version negotiation
// on (`auto`: a `server/discover` probe first, `initialize` only as the fallback for older servers), and an
// OAuthClientProvider whose redirectToAuthorization hands the URL to the headless browser. Prints the
// negotiated protocol version (which must be 2026-07-28: both ends speak it), then tools/list and whoami; then,
// past the access token's lifetime, another call that the SDK must make work by refreshing on its own.
//
//   node sdk_v2.mjs MCP_URL
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from "@modelcontextprotocol/client";
import { BrowserProvider, callbackServer, pastExpiry, run, text } from "./common.mjs";

const EXPECTED_VERSION = "2026-07-28";

const newClient = () =>
  new Client({ name: "portcullis-interop-sdk-v2", version: "1.0.0" }, { versionNegotiation: { mode: "auto" } });

run(async () => {
  const url = process.argv[2];
  const callback = await callbackServer();
  const provider = new BrowserProvider(callback.url, "interop: MCP TypeScript SDK v2", { application_type: "native" });
  try {
    await newClient().connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
    throw new Error("connected without authorization");
  } catch (e) {
    if (!(e instanceof UnauthorizedError) && e?.name !== "UnauthorizedError") throw e;
  }
  if (!provider.browser) throw new Error("the SDK never asked to open the browser");
  const redirected = await callback.result;
  await provider.browser;
  if (!redirected.searchParams.get("code")) throw new Error(`no code in the callback: ${redirected}`);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await transport.finishAuth(redirected.searchParams);
  const client = newClient();
  await client.connect(transport);
  const version = client.getNegotiatedProtocolVersion();
  console.log(`negotiated protocol version: ${version}`);
  if (version !== EXPECTED_VERSION) throw new Error(`negotiated ${version}, not ${EXPECTED_VERSION}`);
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
