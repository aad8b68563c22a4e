// mcp-remote (npm) as a stdio proxy in front of the Streamable HTTP endpoint, driven by the MCP TypeScript
// SDK's stdio client. mcp-remote opens the browser with the `open` package, whose bundled xdg-open runs
// $BROWSER on a machine without a desktop, so BROWSER is the headless browser (run.sh clears DISPLAY and
// XDG_CURRENT_DESKTOP). mcp-remote keeps its tokens in MCP_REMOTE_CONFIG_DIR (a temporary directory) and must
// refresh them by itself once the access token has expired.
//
//   node mcp_remote.mjs MCP_URL
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AUTO_BROWSER, pastExpiry, run, text } from "./common.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.join(here, "..", "node_modules", "mcp-remote", "dist", "proxy.js");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function accessToken(dir) {
  for (const entry of readdirSync(dir, { recursive: true })) {
    if (String(entry).endsWith("_tokens.json") || String(entry).endsWith("tokens.json")) {
      return JSON.parse(readFileSync(path.join(dir, String(entry)), "utf8")).access_token;
    }
  }
  return undefined;
}

run(async () => {
  const url = process.argv[2];
  const config = mkdtempSync(path.join(os.tmpdir(), "mcp-remote-"));
  const port = await freePort();
  const env = { ...process.env, BROWSER: AUTO_BROWSER, MCP_REMOTE_CONFIG_DIR: config };
  for (const k of ["DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION"]) delete env[k];
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [bin, url, String(port), "--host", "127.0.0.1", "--allow-http"],
    env,
    stderr: "pipe",
  });
  let log = "";
  transport.stderr?.on("data", (d) => (log += d));
  const client = new Client({ name: "portcullis-interop-mcp-remote", version: "1.0.0" });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    if (!tools.some((t) => t.name === "whoami")) throw new Error("whoami is not listed");
    const who = text(await client.callTool({ name: "whoami", arguments: {} }));
    if (!JSON.parse(who).sub) throw new Error(`whoami said ${who}`);
    const before = accessToken(config);
    if (!before) throw new Error("mcp-remote stored no token");
    await pastExpiry();
    const echoed = text(await client.callTool({ name: "echo", arguments: { message: "after expiry" } }));
    if (!echoed.includes("after expiry")) throw new Error(`echo said ${echoed}`);
    const after = accessToken(config);
    if (!after || after === before) throw new Error("mcp-remote did not refresh the expired access token");
    await client.close();
  } catch (e) {
    throw new Error(`${e?.message || e}\n--- mcp-remote stderr ---\n${log.slice(-4000)}`);
  } finally {
    rmSync(config, { recursive: true, force: true });
  }
});
