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

// The OAuthClientProvider of the SDK clients (v1 and v2 share the interface): an in-memory store, a public
// client registered dynamically with `clientName` (and `extra` metadata), and redirectToAuthorization handing
// the URL to the headless browser. `refreshes` counts the tokens saved over earlier ones (refreshes by the SDK).
export class BrowserProvider {
  constructor(redirectUrl, clientName, extra = {}) {
    this.redirect = redirectUrl;
    this.clientName = clientName;
    this.extra = extra;
    this.store = {};
    this.browser = null;
    this.refreshes = 0;
  }
  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata() {
    return {
      client_name: this.clientName,
      redirect_uris: [this.redirect],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      ...this.extra,
    };
  }
  clientInformation() {
    return this.store.client;
  }
  saveClientInformation(info) {
    this.store.client = info;
  }
  tokens() {
    return this.store.tokens;
  }
  saveTokens(tokens) {
    if (this.store.tokens) this.refreshes += 1;
    this.store.tokens = tokens;
  }
  redirectToAuthorization(url) {
    this.browser = browse(url);
    this.browser.catch(() => {});
  }
  saveCodeVerifier(v) {
    this.store.verifier = v;
  }
  codeVerifier() {
    return this.store.verifier;
  }
}
