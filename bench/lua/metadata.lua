-- GET the RFC 8414 authorization-server metadata.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.path = "/.well-known/oauth-authorization-server"
