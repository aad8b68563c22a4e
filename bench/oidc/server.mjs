// A minimal node-oidc-provider 9.x configured like Portcullis, for the side-by-side benchmark (BENCHMARKS.md):
// dynamic client registration on, PKCE required, refresh tokens rotated on every use, JWT (RFC 9068) access
// tokens for the MCP resource via resource indicators (RFC 8707), ES256 signatures, revocation on; and a small
// protected POST /mcp route in the same process that verifies the bearer JWT with jose against the provider's
// JWKS and answers a JSON-RPC `tools/list`.
//
// There is no login UI: GET /interaction/:uid auto-approves (login as account "bench", then a grant of the
// requested scopes and resource), so a setup script can mint codes by following redirects. Benchmark use only.
//
// Usage: node server.mjs PORT   (listens on 127.0.0.1 only; prints "listening on http://127.0.0.1:PORT")
import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.argv[2] || 0);
const issuer = `http://127.0.0.1:${port}`;
const resource = `${issuer}/mcp`;
const scopes = 'mcp:tools';

const ec = await jose.generateKeyPair('ES256', { extractable: true });
const rsa = await jose.generateKeyPair('RS256', { extractable: true });
const ecJwk = { ...(await jose.exportJWK(ec.privateKey)), kid: 'ec1', alg: 'ES256', use: 'sig' };
const rsaJwk = { ...(await jose.exportJWK(rsa.privateKey)), kid: 'rsa1', alg: 'RS256', use: 'sig' };

// An unbounded in-memory adapter: the bundled development adapter is an LRU of 1000 entries, which under load
// evicts live clients, grants and tokens (a run of registrations would then break the refresh and revocation
// runs). Like the bundled one it keeps nothing on disk: see "What is not equal" in BENCHMARKS.md.
const store = new Map();
const grants = new Map();
class MapAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload) {
    store.set(this.key(id), payload);
    if (payload.grantId) {
      const ids = grants.get(payload.grantId) || [];
      ids.push(this.key(id));
      grants.set(payload.grantId, ids);
    }
    if (payload.uid) store.set(`${this.model}:uid:${payload.uid}`, id);
    if (payload.userCode) store.set(`${this.model}:userCode:${payload.userCode}`, id);
  }
  async find(id) { return store.get(this.key(id)); }
  async findByUid(uid) { const id = store.get(`${this.model}:uid:${uid}`); return id && this.find(id); }
  async findByUserCode(c) { const id = store.get(`${this.model}:userCode:${c}`); return id && this.find(id); }
  async consume(id) { const p = store.get(this.key(id)); if (p) p.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { store.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    for (const k of grants.get(grantId) || []) store.delete(k);
    grants.delete(grantId);
  }
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  jwks: { keys: [ecJwk, rsaJwk] },
  scopes: ['openid', 'offline_access', scopes],
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    id_token_signed_response_alg: 'ES256',
  },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) throw new Error('unknown resource');
        return {
          scope: scopes,
          audience: resource,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { RefreshToken: 14 * 24 * 3600, AccessToken: 3600, AuthorizationCode: 60, Grant: 14 * 24 * 3600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
});
provider.proxy = false;

// Auto-approving interaction: login first, then consent with a grant covering what was asked.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: 'bench' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingResourceScopes) {
      for (const [ind, sc] of Object.entries(prompt.details.missingResourceScopes)) {
        grant.addResourceScope(ind, sc.join(' '));
      }
    }
    grant.addResourceScope(resource, scopes);
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// The protected MCP route: bearer JWT verified with jose against the provider's own JWKS (fetched once over
// HTTP and cached by jose, as a separate resource server would).
const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));
const TOOLS = JSON.stringify([
  { name: 'whoami', description: 'Who is calling.', inputSchema: { type: 'object', properties: {} } },
  { name: 'echo', description: 'Echoes message.', inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } },
  { name: 'server_stats', description: 'Server statistics (mcp:admin).', inputSchema: { type: 'object', properties: {} } },
]);
function unauthorized(res) {
  res.writeHead(401, {
    'www-authenticate': `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", error="invalid_token"`,
    'content-type': 'application/json',
  });
  res.end('{"error":"invalid_token"}');
}
function mcp(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const auth = req.headers.authorization || '';
    const m = /^Bearer (.+)$/i.exec(auth);
    if (!m) return unauthorized(res);
    try {
      await jose.jwtVerify(m[1], jwks, { issuer, audience: resource, typ: 'at+jwt', algorithms: ['ES256'] });
    } catch {
      return unauthorized(res);
    }
    let id = null;
    try { id = JSON.parse(Buffer.concat(chunks).toString()).id ?? null; } catch { /* id stays null */ }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":${TOOLS}}}`);
  });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url === '/mcp' && req.method === 'POST') return mcp(req, res);
  if (req.url.startsWith('/interaction/')) {
    return interaction(req, res).catch((e) => {
      res.writeHead(500);
      res.end(String(e));
    });
  }
  return callback(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
