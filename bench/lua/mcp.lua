-- POST a JSON-RPC tools/list to the protected MCP endpoint with a bearer access token (RFC 6750 §2.1).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local f = assert(io.open(os.getenv("BENCH_DIR") .. "/access.txt"))
local token = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = "/mcp"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
