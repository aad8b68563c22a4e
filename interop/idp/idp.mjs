// A real upstream OpenID Provider for Portcullis's federation tests (issue 13): node-oidc-provider (pinned in
// interop/package.json) on 127.0.0.1 with its own minimal login and consent pages and a few test-only control
// endpoints. See interop/idp/README.md for the configuration, the endpoints and what each one proves.
//
//   node interop/idp/idp.mjs '<JSON config>' [port]      (or IDP_CONFIG='<JSON>' IDP_PORT=0 node interop/idp/idp.mjs)
//
// The config may also be a path to a JSON file. Prints exactly one line on stdout, `IDP_READY <issuer>`, once
// listening; everything else (oidc-provider's notices, request errors) goes to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import { Provider, errors } from 'oidc-provider';

// stdout carries only the ready line: oidc-provider prints its notices with console.info.
console.info = console.error;
console.log = console.error;

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// --- configuration ---------------------------------------------------------------------------------------------

function readConfig() {
  const raw = process.argv[2] ?? process.env.IDP_CONFIG ?? '{}';
  const text = raw.trimStart().startsWith('{') ? raw : fs.readFileSync(raw, 'utf8');
  const config = JSON.parse(text);
  return {
    password: config.password ?? 'idp password',
    signingAlg: config.signing_alg ?? 'RS256',
    accessTokenTtl: config.access_token_ttl ?? 3600,
    refreshTokenTtl: config.refresh_token_ttl ?? 14 * 24 * 3600,
    idTokenTtl: config.id_token_ttl ?? 3600,
    port: Number(process.argv[3] ?? process.env.IDP_PORT ?? config.port ?? 0),
    clients: (config.clients ?? []).map((c) => ({
      grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    accounts: new Map((config.accounts ?? []).map((a) => [a.id, a])),
  };
}

const config = readConfig();

/** The account for a login name: its id or (case-insensitively) its email. */
function accountByLogin(login) {
  const name = String(login ?? '').trim();
  if (config.accounts.has(name)) return config.accounts.get(name);
  const lower = name.toLowerCase();
  return [...config.accounts.values()].find((a) => a.email && a.email.toLowerCase() === lower);
}

/** oidc-provider's findAccount: the claims come from the config; `claims` (below) filters them by scope. */
async function findAccount(_ctx, sub) {
  const account = config.accounts.get(sub);
  if (!account) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: account.email,
        email_verified: account.email_verified,
        preferred_username: account.preferred_username,
        name: account.name,
        groups: account.groups,
      };
    },
  };
}

// --- signing keys ----------------------------------------------------------------------------------------------

/** A fresh private JWK pair: RSA 2048 (RS256, also PS256) first, P-256 (ES256) second. */
function newSigningKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const id = () => crypto.randomBytes(8).toString('hex');
  return [{ ...rsa, kid: `rsa-${id()}`, use: 'sig' }, { ...ec, kid: `ec-${id()}`, use: 'sig' }];
}

// --- storage: one in-memory store shared by every Provider instance (it survives key rotation) ------------------

const store = new Map(); // `${model}:${id}` -> { payload, expiresAt (ms) }

class Adapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { model: this.model, payload, expiresAt });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  findWhere(predicate) {
    for (const entry of store.values()) {
      if (entry.model === this.model && entry.expiresAt > Date.now() && predicate(entry.payload)) {
        return entry.payload;
      }
    }
    return undefined;
  }

  async findByUid(uid) {
    return this.findWhere((p) => p.uid === uid);
  }

  async findByUserCode(userCode) {
    return this.findWhere((p) => p.userCode === userCode);
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

/** Test control: every grant, token, code, session and interaction of one account is gone. */
function revokeAccount(sub) {
  let removed = 0;
  for (const [key, entry] of store) {
    const p = entry.payload;
    if (p.accountId === sub || p.session?.accountId === sub || p.result?.login?.accountId === sub) {
      store.delete(key);
      removed += 1;
    }
  }
  return removed;
}

// --- the provider (rebuilt on key rotation, behind the same HTTP server) ---------------------------------------

// Cookie signing keys stay the same across rebuilds so that browser sessions survive a key rotation.
const cookieKeys = [crypto.randomBytes(32).toString('hex')];

function buildProvider(issuer, jwks) {
  const provider = new Provider(issuer, {
    adapter: Adapter,
    clients: config.clients,
    findAccount,
    jwks: { keys: jwks },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      id_token_signed_response_alg: config.signingAlg,
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    // ID tokens carry the scope's claims too (email, preferred_username, groups), as Google's and Entra's do.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    // RFC 7636 / OAuth 2.1: PKCE on every authorization request (oidc-provider 9 only knows S256).
    pkce: { required: () => true },
    // A refresh token for the plain code flow (no offline_access needed), rotated on every use, and not bound to
    // the IdP's browser session (as at Google, Entra, Okta for a web app).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: config.accessTokenTtl,
      IdToken: config.idTokenTtl,
      RefreshToken: config.refreshTokenTtl,
      Grant: config.refreshTokenTtl,
      Session: config.refreshTokenTtl,
      Interaction: 3600,
      AuthorizationCode: 60,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    tokenExchange,
    ['subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type'],
  );
  provider.on('server_error', (_ctx, err) => console.error('idp: server_error', err));
  provider.on('grant.error', (_ctx, err) => console.error(`idp: grant error: ${err.message} (${err.error_description ?? ''})`));
  return provider;
}

/**
 * RFC 8693 token exchange: a valid (opaque) access token of this IdP as `subject_token` plus an `audience` buys a
 * JWT access token (RFC 9068, `typ: at+jwt`, signed with the IdP's current key, `aud` = the audience, same `sub`),
 * tied to the subject token's grant so that revoking the user revokes it too.
 */
async function tokenExchange(ctx) {
  const { provider, params, client } = ctx.oidc;
  if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be urn:ietf:params:oauth:token-type:access_token');
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens can be requested');
  }
  if (!params.audience) throw new errors.InvalidTarget('audience is required');
  const subject = await provider.AccessToken.find(params.subject_token);
  if (!subject || subject.isExpired) throw new errors.InvalidGrant('subject_token is invalid or expired');
  const grant = await provider.Grant.find(subject.grantId);
  if (!grant || !(await findAccount(ctx, subject.accountId))) {
    throw new errors.InvalidGrant('subject_token no longer valid (grant or account gone)');
  }
  const had = new Set((subject.scope ?? '').split(' ').filter(Boolean));
  const asked = params.scope ? params.scope.split(' ').filter(Boolean) : [...had];
  if (asked.some((s) => !had.has(s))) throw new errors.InvalidScope('scope exceeds the subject token\'s scope');
  const scope = asked.join(' ');
  const at = new provider.AccessToken({
    accountId: subject.accountId,
    client,
    grantId: subject.grantId,
    gty: TOKEN_EXCHANGE,
    scope,
  });
  at.resourceServer = new provider.ResourceServer(params.audience, {
    audience: params.audience,
    scope,
    accessTokenFormat: 'jwt',
    accessTokenTTL: config.accessTokenTtl,
  });
  ctx.oidc.entity('AccessToken', at);
  const value = await at.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: at.expiration,
    scope,
  };
}

// --- login and consent pages -----------------------------------------------------------------------------------

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
    + `<body><h1>${escape(title)}</h1>${body}</body></html>`);
}

function loginPage(res, uid, clientId, error) {
  page(res, error ? 401 : 200, 'Test IdP: sign in', `
    <p>Signing in to <b>${escape(clientId)}</b>.</p>
    ${error ? `<p id="error">${escape(error)}</p>` : ''}
    <form method="post" action="/interaction/${escape(uid)}/login">
      <label>Account id or email <input id="login" name="login" autofocus></label>
      <label>Password <input id="password" name="password" type="password"></label>
      <button id="submit" type="submit">Sign in</button>
    </form>`);
}

function consentPage(res, uid, clientId, accountId, scopes) {
  page(res, 200, 'Test IdP: allow access', `
    <p id="who">Signed in as <b>${escape(accountId)}</b>.</p>
    <p><b>${escape(clientId)}</b> asks for: <span id="scopes">${escape(scopes.join(' '))}</span></p>
    <form method="post" action="/interaction/${escape(uid)}/confirm">
      <button id="allow" name="decision" value="allow" type="submit">Allow</button>
      <button id="deny" name="decision" value="deny" type="submit">Deny</button>
    </form>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function showInteraction(provider, req, res) {
  const { uid, prompt, params, session } = await provider.interactionDetails(req, res);
  if (prompt.name === 'login') return loginPage(res, uid, params.client_id);
  const scopes = [...(prompt.details.missingOIDCScope ?? [])];
  return consentPage(res, uid, params.client_id, session?.accountId, scopes);
}

async function submitLogin(provider, req, res) {
  const { uid, prompt, params } = await provider.interactionDetails(req, res);
  if (prompt.name !== 'login') throw new errors.InvalidRequest('not at the login step');
  const form = await readForm(req);
  const account = accountByLogin(form.get('login'));
  if (!account || form.get('password') !== config.password) {
    return loginPage(res, uid, params.client_id, 'Unknown account or wrong password.');
  }
  return provider.interactionFinished(req, res, { login: { accountId: account.id } }, { mergeWithLastSubmission: false });
}

async function submitConsent(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name !== 'consent') throw new errors.InvalidRequest('not at the consent step');
  const form = await readForm(req);
  if (form.get('decision') !== 'allow') {
    const denied = { error: 'access_denied', error_description: 'the user denied the request' };
    return provider.interactionFinished(req, res, denied, { mergeWithLastSubmission: false });
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

// --- test control endpoints (/__test/*, loopback only) ---------------------------------------------------------

let delayMs = 0;

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function isLoopback(address) {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** POST /__test/rotate-keys[?keep_old=true], /__test/revoke-user?sub=ID, /__test/delay?ms=N. */
function control(state, req, res, url) {
  if (!isLoopback(req.socket.remoteAddress)) return json(res, 403, { error: 'loopback only' });
  if (req.method !== 'POST') return json(res, 405, { error: 'POST only' });
  switch (url.pathname) {
    case '/__test/rotate-keys': {
      const fresh = newSigningKeys();
      state.keys = url.searchParams.get('keep_old') === 'true' ? [...fresh, ...state.keys] : fresh;
      state.provider = buildProvider(state.issuer, state.keys);
      state.handler = state.provider.callback();
      return json(res, 200, { kids: state.keys.map((k) => k.kid) });
    }
    case '/__test/revoke-user': {
      const sub = url.searchParams.get('sub');
      if (!sub) return json(res, 400, { error: 'sub is required' });
      return json(res, 200, { sub, removed: revokeAccount(sub) });
    }
    case '/__test/delay': {
      delayMs = Math.max(0, Number(url.searchParams.get('ms') ?? 0) || 0);
      return json(res, 200, { ms: delayMs });
    }
    default:
      return json(res, 404, { error: 'unknown control endpoint' });
  }
}

// --- the server ------------------------------------------------------------------------------------------------

const INTERACTION = /^\/interaction\/([^/]+)(\/login|\/confirm)?$/;

async function route(state, req, res) {
  const url = new URL(req.url, state.issuer);
  if (url.pathname.startsWith('/__test/')) return control(state, req, res, url);
  if (delayMs > 0) await new Promise((resolve) => { setTimeout(resolve, delayMs); });
  const { provider } = state;
  const m = INTERACTION.exec(url.pathname);
  if (!m) return state.handler(req, res);
  try {
    if (req.method === 'GET' && !m[2]) return await showInteraction(provider, req, res);
    if (req.method === 'POST' && m[2] === '/login') return await submitLogin(provider, req, res);
    if (req.method === 'POST' && m[2] === '/confirm') return await submitConsent(provider, req, res);
    return page(res, 405, 'Method not allowed', '');
  } catch (err) {
    console.error('idp: interaction failed:', err);
    return page(res, 400, 'Test IdP: error', `<p id="error">${escape(err.message)}</p>`);
  }
}

const state = {
  issuer: undefined, keys: newSigningKeys(), provider: undefined, handler: undefined,
};
const server = http.createServer((req, res) => {
  route(state, req, res).catch((err) => {
    console.error('idp: request failed:', err);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
server.listen(config.port, '127.0.0.1', () => {
  state.issuer = `http://127.0.0.1:${server.address().port}`;
  state.provider = buildProvider(state.issuer, state.keys);
  state.handler = state.provider.callback();
  process.stdout.write(`IDP_READY ${state.issuer}\n`);
});
// With IDP_STDIN_LIFELINE=1 (the Rust harness sets it) the end of stdin ends the process: the test that started
// it went away without killing it.
if (process.env.IDP_STDIN_LIFELINE === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
