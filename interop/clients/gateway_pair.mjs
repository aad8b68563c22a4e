// One client of interop/gateway-pairings.sh: the TypeScript SDK v1 client (@modelcontextprotocol/sdk) or the v2
// client (@modelcontextprotocol/client, version negotiation `auto`: `server/discover` first, `initialize` as
// the fallback) logs in through the gateway (OAuth, the headless browser of common.mjs), prints the negotiated
// protocol version, lists the tools and calls `echo`.
//
//   node gateway_pair.mjs v1|v2 MCP_URL
import { BrowserProvider, callbackServer, run, text } from "./common.mjs";

const [line, url] = process.argv.slice(2);

async function sdk() {
  if (line === "v2") {
    const m = await import("@modelcontextprotocol/client");
    return {
      newClient: () => new m.Client({ name: "pairing-v2", version: "1.0.0" }, { versionNegotiation: { mode: "auto" } }),
      Transport: m.StreamableHTTPClientTransport,
      version: (client) => client.getNegotiatedProtocolVersion(),
    };
  }
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  return {
    newClient: () => new Client({ name: "pairing-v1", version: "1.0.0" }),
    Transport: StreamableHTTPClientTransport,
    version: (_client, transport) => transport.protocolVersion,
  };
}

run(async () => {
  const { newClient, Transport, version } = await sdk();
  const callback = await callbackServer();
  const provider = new BrowserProvider(callback.url, `interop: gateway pairing, TypeScript SDK ${line} client`);
  try {
    await newClient().connect(new Transport(new URL(url), { authProvider: provider }));
    throw new Error("connected without authorization");
  } catch (e) {
    if (e?.name !== "UnauthorizedError" && e?.message !== "Unauthorized") throw e;
  }
  if (!provider.browser) throw new Error("the SDK never asked to open the browser");
  const redirected = await callback.result;
  await provider.browser;
  const transport = new Transport(new URL(url), { authProvider: provider });
  // v1 takes the code, v2 the callback's parameters (it checks `iss`, RFC 9207).
  const code = redirected.searchParams.get("code") ?? "";
  await transport.finishAuth(line === "v2" ? redirected.searchParams : code);
  const client = newClient();
  await client.connect(transport);
  console.log(`negotiated protocol version: ${version(client, transport)}`);
  const { tools } = await client.listTools();
  if (!tools.some((t) => t.name === "echo")) throw new Error(`echo is not listed: ${JSON.stringify(tools)}`);
  console.log(text(await client.callTool({ name: "echo", arguments: {} })));
  await client.close();
  callback.close();
});
