-- POST a token revocation (RFC 7009) by the token's own public client, the same token every time.
-- BENCH_REVOKE_HINT=refresh_token (both servers: the first request revokes, later ones find a revoked token and
-- answer 200, RFC 7009 §2.2) or access_token (Portcullis only: each request durably records the JWT's `jti` in
-- the revocation log; oidc-provider refuses to revoke structured JWT access tokens, `unsupported_token_type`).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local function read(name)
  local f = assert(io.open(os.getenv("BENCH_DIR") .. "/" .. name))
  local s = f:read("*l")
  f:close()
  return s
end
local hint = os.getenv("BENCH_REVOKE_HINT")
local token = read(hint == "access_token" and "revoke_access.txt" or "revoke_refresh.txt")
wrk.method = "POST"
wrk.path = os.getenv("REVOKE_PATH")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "token=" .. token .. "&token_type_hint=" .. hint .. "&client_id=" .. read("client_id.revoke")

-- Show why the first failing response of each thread failed (the run counts it as an error either way).
local shown = false
function response(status, headers, body)
  if status ~= 200 and not shown then
    shown = true
    io.stderr:write("revoke: HTTP " .. status .. " " .. string.sub(body, 1, 200) .. "\n")
  end
end
