// Shared pieces of the Node interop clients: the loopback callback server (RFC 8252 §7.3, 127.0.0.1, random
// port, path /callback) and the headless "browser" (tests/support/auto_browser.py), which logs in and approves
// through Portcullis's real HTML forms and then GETs the callback URL.
import { spawn } from "node:child_process";
import http from "node:http";

export const AUTO_BROWSER = process.env.AUTO_BROWSER;
export const TTL = Number(process.env.ACCESS_TOKEN_TTL || "15");

/** Starts a one-shot callback listener; `url` is the redirect URI, `result` resolves to the callback URL. */
export async function callbackServer() {
  let deliver;
  const result = new Promise((resolve) => (deliver = resolve));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    if (url.pathname !== "/callback") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" }).end("You can close this window.");
    deliver(url);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/callback`,
    result,
    close: () => server.close(),
  };
}

/** Runs the headless browser on `url`; rejects if it fails. */
export function browse(url) {
  return new Promise((resolve, reject) => {
    if (!AUTO_BROWSER) return reject(new Error("AUTO_BROWSER is not set"));
    const child = spawn(AUTO_BROWSER, [String(url)], { stdio: ["ignore", "inherit", "inherit"] });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`auto_browser exited ${code}`))));
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the access token issued `ttl` seconds ago has certainly expired. */
export const pastExpiry = () => sleep((TTL + 3) * 1000);

/** Extracts the text of a tools/call result, failing on a tool error. */
export function text(result) {
  if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
  return result.content.map((c) => c.text ?? "").join("");
}

/** Runs `main`, printing the reason and exiting 1 on failure. */
export function run(main) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(`error: ${e?.stack || e}`);
      process.exit(1);
    },
  );
}
