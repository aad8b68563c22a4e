// The MCP TypeScript SDK's client (`Client` + `StreamableHTTPClientTransport` + an `OAuthClientProvider`) against
// `portcullis serve --upstream` in front of the SDK's own example server: real discovery from the gateway's 401,
// dynamic client registration, PKCE, login and consent through Portcullis's forms (AUTO_BROWSER, the headless
// browser of ../clients/common.mjs), code exchange by `transport.finishAuth`. Then, through the gateway:
//
//  - tools/list shows the example's tools, minus HIDDEN_TOOL (its --tool-scope is not granted; the gateway
//    rewrites the example's event-stream answer);
//  - `multi-greet` sends logging notifications a second apart before its result (the example sends them on the
//    session's GET event stream, the result on the POST's): they must arrive one by one, the first well before the
//    result (no buffering in the gateway);
//  - `start-notification-stream` sends COUNT notifications 100 ms apart: all must arrive, then the result.
//
//   AUTO_BROWSER=… HIDDEN_TOOL=list-files node gateway-client.mjs MCP_URL
//
// Prints one line per check; exits 0 when all pass, 1 otherwise.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { browse, callbackServer, run, sleep, text } from '../clients/common.mjs';

const url = new URL(process.argv[2]);
const hidden = process.env.HIDDEN_TOOL || 'list-files';
const COUNT = 5;

/** Waits up to 3 s for `done()`. */
async function waitFor(done) {
    for (let i = 0; i < 60 && !done(); i++) await sleep(50);
}

const check = (ok, what) => {
    console.log(`${ok ? 'ok' : 'not ok'}: ${what}`);
    if (!ok) throw new Error(`check failed: ${what}`);
};

class Provider {
    constructor(redirectUrl) {
        this.redirect = redirectUrl;
        this.store = {};
        this.browser = null;
    }
    get redirectUrl() {
        return this.redirect;
    }
    get clientMetadata() {
        return {
            client_name: 'interop: MCP TypeScript SDK through the gateway',
            redirect_uris: [this.redirect],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none'
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
        this.store.tokens = tokens;
    }
    redirectToAuthorization(authorizationUrl) {
        this.browser = browse(authorizationUrl);
        this.browser.catch(() => {});
    }
    saveCodeVerifier(v) {
        this.store.verifier = v;
    }
    codeVerifier() {
        return this.store.verifier;
    }
}

run(async () => {
    const callback = await callbackServer();
    const provider = new Provider(callback.url);
    try {
        await new Client({ name: 'gateway-ts-sdk', version: '1.0.0' }).connect(
            new StreamableHTTPClientTransport(url, { authProvider: provider })
        );
        throw new Error('connected without authorization');
    } catch (e) {
        if (!(e instanceof UnauthorizedError)) throw e;
    }
    check(provider.browser !== null, 'the gateway 401 led the SDK to discovery, registration and the browser');
    const redirected = await callback.result;
    await provider.browser;
    callback.close();
    const code = redirected.searchParams.get('code');
    check(!!code && redirected.searchParams.get('iss') !== null, 'authorization code (with iss) at the callback');
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await transport.finishAuth(code);
    check(!!provider.tokens()?.access_token, 'code exchanged for an access token (PKCE)');

    const client = new Client({ name: 'gateway-ts-sdk', version: '1.0.0' });
    const notes = [];
    const started = Date.now();
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        notes.push({ at: Date.now() - started, data: String(n.params.data) });
    });
    await client.connect(transport);
    check(!!transport.sessionId, `session opened through the gateway (${transport.sessionId})`);

    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    check(
        ['greet', 'multi-greet', 'start-notification-stream'].every((n) => names.includes(n)),
        `tools/list: ${names.join(', ')}`
    );
    check(!names.includes(hidden), `tools/list hides ${hidden} (its scope was not granted)`);

    const greeting = text(await client.callTool({ name: 'greet', arguments: { name: 'gateway' } }));
    check(greeting.includes('Hello, gateway'), `greet: ${greeting}`);

    notes.length = 0;
    const t0 = Date.now() - started;
    const multi = text(await client.callTool({ name: 'multi-greet', arguments: { name: 'gateway' } }));
    const resultAt = Date.now() - started;
    // The notifications travel on the GET stream, the result on the POST's: the last one may trail the result.
    await waitFor(() => notes.filter((n) => n.data.includes('greeting')).length >= 2);
    const greets = notes.filter((n) => n.data.includes('greeting'));
    check(multi.includes('Good morning, gateway'), `multi-greet: ${multi}`);
    check(
        greets.length === 2,
        `multi-greet: 2 greeting notifications over SSE (${notes.map((n) => n.at - t0).join(' ms, ')} ms)`
    );
    check(
        resultAt - greets[0].at >= 700,
        `the first notification arrived ${resultAt - greets[0].at} ms before the result (streamed, not buffered)`
    );

    notes.length = 0;
    const stream = text(
        await client.callTool({ name: 'start-notification-stream', arguments: { interval: 100, count: COUNT } })
    );
    await waitFor(() => notes.filter((n) => n.data.startsWith('Periodic notification')).length >= COUNT);
    const periodic = notes.filter((n) => n.data.startsWith('Periodic notification'));
    check(stream.includes('periodic notifications'), `start-notification-stream: ${stream}`);
    check(periodic.length === COUNT, `start-notification-stream: ${periodic.length} of ${COUNT} notifications`);

    await transport.terminateSession();
    await client.close();
});
