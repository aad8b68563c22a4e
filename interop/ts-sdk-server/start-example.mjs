// Starts the MCP TypeScript SDK's example Streamable HTTP server `simpleStreamableHttp.js` unchanged and without
// its --oauth flag (no authentication of its own), on $MCP_PORT: the upstream of `portcullis serve --upstream` in
// ../gateway-ts-sdk.sh. The example calls `app.listen(port)`, which would listen on every interface; this wrapper
// makes every listen without an explicit host bind to 127.0.0.1 only.
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

if (process.argv.some((a) => a.startsWith('--oauth'))) {
    console.error('start-example.mjs runs the example without OAuth; Portcullis in front of it does the OAuth');
    process.exit(2);
}
await import('@modelcontextprotocol/sdk/examples/server/simpleStreamableHttp.js');
