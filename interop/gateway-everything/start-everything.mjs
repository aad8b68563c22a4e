// Starts @modelcontextprotocol/server-everything in Streamable HTTP mode on $PORT (its /mcp endpoint). The server
// calls `app.listen(PORT)`, which would listen on every interface; this wrapper makes every listen without an
// explicit host bind to 127.0.0.1 only, then runs the package's launcher unchanged.
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

process.argv.splice(2, process.argv.length, 'streamableHttp');
await import('@modelcontextprotocol/server-everything/dist/index.js');
