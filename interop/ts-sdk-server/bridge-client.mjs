// A real stdio MCP client (the MCP TypeScript SDK's `Client` + `StdioClientTransport`) driving `portcullis bridge`.
//
//   node bridge-client.mjs PORTCULLIS_BINARY MCP_URL MESSAGE
//
// Spawns `PORTCULLIS_BINARY bridge MCP_URL` (with this process's environment, so PORTCULLIS_HOME and a warm token
// cache are used), initializes, lists the tools, calls `echo` with {"message": MESSAGE} and checks that the result
// contains MESSAGE. Prints one line per check; exits 0 when all pass, 1 otherwise.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const [binary, url, message] = process.argv.slice(2);
if (!binary || !url || !message) {
    console.error('usage: node bridge-client.mjs PORTCULLIS_BINARY MCP_URL MESSAGE');
    process.exit(2);
}

const check = (ok, what) => {
    console.log(`${ok ? 'ok' : 'not ok'}: ${what}`);
    if (!ok) process.exitCode = 1;
    return ok;
};

const transport = new StdioClientTransport({
    command: binary,
    args: ['bridge', url],
    env: process.env, // the default environment would drop PORTCULLIS_HOME
    stderr: 'inherit' // the bridge logs on stderr only; stdout carries JSON-RPC
});
const client = new Client({ name: 'portcullis-interop-bridge-client', version: '1.0.0' });
const deadline = setTimeout(() => {
    console.error('bridge-client: timed out');
    process.exit(1);
}, 30_000);

try {
    await client.connect(transport);
    const server = client.getServerVersion();
    check(server !== undefined, `initialized through the bridge (server ${JSON.stringify(server)})`);
    const { tools } = await client.listTools();
    const names = tools.map(t => t.name);
    check(names.includes('echo'), `tools/list lists echo (${names.join(', ')})`);
    const result = await client.callTool({ name: 'echo', arguments: { message } });
    const text = (result.content ?? []).filter(c => c.type === 'text').map(c => c.text).join('\n');
    check(!result.isError && text.includes(message), `tools/call echo returned ${JSON.stringify(text)}`);
} catch (e) {
    check(false, `bridge session failed: ${e?.stack ?? e}`);
} finally {
    clearTimeout(deadline);
    await client.close().catch(() => {});
}
