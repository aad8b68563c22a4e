// A strict generic OAuth 2.1 client, oauth4webapi: RFC 8414 discovery (the issuer must match exactly), RFC 7591
// registration, PKCE S256 (RFC 7636), `state`, and RFC 9207 `iss` checked by validateAuthResponse; the code
// exchange with `resource` (RFC 8707); a call to the MCP endpoint; then, past the access token's lifetime, the
// old token refused, a refresh (RFC 6749 §6), and the call again with the new token.
//
//   node oauth4webapi.mjs ISSUER MCP_URL
import * as oauth from "oauth4webapi";
import { browse, callbackServer, pastExpiry, run } from "./common.mjs";

// Plain http is used only for 127.0.0.1 (RFC 8252 §8.3 loopback); oauth4webapi refuses it unless told.
const insecure = { [oauth.allowInsecureRequests]: true };

async function mcp(url, token, id, method, params) {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2025-06-18",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id, method, params }),
  });
  const body = await res.text();
  if (!res.ok) return { status: res.status, body, challenge: res.headers.get("www-authenticate") };
  const json = body.startsWith("{") ? JSON.parse(body) : JSON.parse(body.split("\ndata: ")[1] ?? body.slice(6));
  return { status: res.status, json };
}

async function toolsAndWhoami(url, token) {
  const init = await mcp(url, token, 1, "initialize", {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "portcullis-interop-oauth4webapi", version: "1.0.0" },
  });
  if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.body}`);
  const list = await mcp(url, token, 2, "tools/list", {});
  if (!list.json?.result?.tools?.some((t) => t.name === "whoami")) throw new Error(`tools/list: ${JSON.stringify(list)}`);
  const who = await mcp(url, token, 3, "tools/call", { name: "whoami", arguments: {} });
  const text = who.json?.result?.content?.[0]?.text ?? "";
  if (!JSON.parse(text || "{}").sub) throw new Error(`whoami: ${JSON.stringify(who)}`);
}

run(async () => {
  const issuer = new URL(process.argv[2]);
  const resource = process.argv[3];
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure }),
  );
  if (!as.code_challenge_methods_supported?.includes("S256")) throw new Error("no S256 advertised");
  if (as.authorization_response_iss_parameter_supported !== true) throw new Error("iss not advertised (RFC 9207)");

  const callback = await callbackServer();
  const client = await oauth.processDynamicClientRegistrationResponse(
    await oauth.dynamicClientRegistrationRequest(
      as,
      {
        client_name: "interop: oauth4webapi",
        redirect_uris: [callback.url],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
        application_type: "native",
      },
      insecure,
    ),
  );
  const auth = oauth.None();

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set("response_type", "code");
  authorize.searchParams.set("client_id", client.client_id);
  authorize.searchParams.set("redirect_uri", callback.url);
  authorize.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
  authorize.searchParams.set("code_challenge_method", "S256");
  authorize.searchParams.set("state", state);
  authorize.searchParams.set("resource", resource);
  await browse(authorize);
  const redirected = await callback.result;
  callback.close();
  // Throws unless `state` matches and `iss` equals the issuer (RFC 9207 §2.4).
  const params = oauth.validateAuthResponse(as, client, redirected, state);

  const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, callback.url, verifier, {
    additionalParameters: { resource },
    ...insecure,
  });
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
  if (!tokens.refresh_token) throw new Error("no refresh token issued");
  await toolsAndWhoami(resource, tokens.access_token);

  await pastExpiry();
  const expired = await mcp(resource, tokens.access_token, 4, "tools/list", {});
  if (expired.status !== 401) throw new Error(`an expired access token got HTTP ${expired.status}`);
  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, {
      additionalParameters: { resource },
      ...insecure,
    }),
  );
  if (refreshed.refresh_token === tokens.refresh_token) throw new Error("the refresh token was not rotated");
  await toolsAndWhoami(resource, refreshed.access_token);
});
