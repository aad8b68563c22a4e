-- POST a dynamic client registration (RFC 7591): a public client with a loopback redirect URI, as MCP clients do.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
wrk.method = "POST"
wrk.path = os.getenv("REGISTER_PATH")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"redirect_uris":["http://127.0.0.1:9/callback"],"token_endpoint_auth_method":"none",' ..
  '"grant_types":["authorization_code","refresh_token"],"response_types":["code"],' ..
  '"application_type":"native","client_name":"bench"}'
