// Starts the MCP TypeScript SDK's example server `simpleStreamableHttp.js --oauth --oauth-strict`: an MCP server on
// $MCP_PORT and its demo in-memory OAuth authorization server on $MCP_AUTH_PORT (a different origin). The example
// calls `app.listen(port)`, which would listen on every interface; this wrapper makes every listen without an
// explicit host bind to 127.0.0.1 only, then runs the example unchanged. Its URLs name `localhost`.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
        if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
    } else if (args[0] && typeof args[0] === 'object' && args[0].port !== undefined && !args[0].host) {
        args[0] = { ...args[0], host: '127.0.0.1' };
    }
    return listen.apply(this, args);
};

for (const flag of ['--oauth', '--oauth-strict']) {
    if (!process.argv.includes(flag)) process.argv.push(flag);
}
await import('@modelcontextprotocol/sdk/examples/server/simpleStreamableHttp.js');
