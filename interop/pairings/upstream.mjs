// A minimal stateless MCP upstream on 127.0.0.1 for interop/gateway-pairings.sh: one tool, `echo`, built with
// either TypeScript SDK line, so the gateway is tried against an upstream of each revision:
//   v1: @modelcontextprotocol/sdk 1.32.2 (McpServer, StreamableHTTPServerTransport): 2025-11-25 and older;
//   v2: @modelcontextprotocol/server 2.4.0 (McpServer, createMcpHandler): 2026-07-28
//       first, older revisions as the fallback.
// Prints `listening URL` once up, then `seen METHOD VERSION` for each request: the revision it was sent in (the
// `_meta` envelope's, else the `MCP-Protocol-Version` header, else `initialize`'s `protocolVersion`).
//
//   node upstream.mjs v1|v2 PORT
import http from "node:http";

const [line, port] = process.argv.slice(2);

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

const echo = async () => ({ content: [{ type: "text", text: `echo from the ${line} upstream` }] });

async function v1(req, res, body) {
  const { McpServer } = await import("@modelcontextprotocol/sdk/server/mcp.js");
  const { StreamableHTTPServerTransport } = await import("@modelcontextprotocol/sdk/server/streamableHttp.js");
  const server = new McpServer({ name: "pairing-upstream-v1", version: "1.0.0" });
  server.tool("echo", "Answers with the upstream's line", echo);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on("close", () => transport.close());
  await server.connect(transport);
  await transport.handleRequest(req, res, body.length ? JSON.parse(body.toString()) : undefined);
}

let modernHandler;
async function v2(req, res, body) {
  const { McpServer, createMcpHandler } = await import("@modelcontextprotocol/server");
  // One factory for both eras: 2026-07-28 served per request, older revisions by the stateless fallback.
  modernHandler ??= createMcpHandler(() => {
    const server = new McpServer({ name: "pairing-upstream-v2", version: "1.0.0" });
    server.registerTool("echo", { description: "Answers with the upstream's line" }, echo);
    return server;
  });
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
  const hasBody = req.method !== "GET" && req.method !== "HEAD" && body.length > 0;
  const request = new Request(`http://127.0.0.1:${port}${req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? body : undefined,
  });
  const response = await modernHandler.fetch(request);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body) for await (const chunk of response.body) res.write(chunk);
  res.end();
}

/** Logs the method and revision of a POSTed message. */
function logSeen(req, body) {
  let msg;
  try {
    msg = JSON.parse(body.toString());
  } catch {
    return;
  }
  if (!msg || Array.isArray(msg) || !msg.method) return;
  const version =
    msg.params?._meta?.["io.modelcontextprotocol/protocolVersion"] ??
    req.headers["mcp-protocol-version"] ??
    msg.params?.protocolVersion ??
    "none";
  console.log(`seen ${msg.method} ${version}`);
}

const handle = line === "v2" ? v2 : v1;
http
  .createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      logSeen(req, body);
      await handle(req, res, body);
    } catch (e) {
      console.error(e);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  })
  .listen(Number(port), "127.0.0.1", () => console.log(`listening http://127.0.0.1:${port}/mcp`));
