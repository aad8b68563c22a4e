-- Refresh-token grant with rotation (RFC 6749 §6, OAuth 2.1 §4.3.1): every request spends one refresh token and
-- the response's new refresh token is put back in the thread's pool, so each connection chains the tokens it
-- gets back and every request is a real rotation. The pool of a thread starts with one minted token per
-- connection of that thread, plus one (bench/mint_tokens.py mints connections + threads tokens); a failed request loses its token and is counted by wrk.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local next_thread = 0
local all = nil

function setup(thread)
  pick_addr(thread)
  if all == nil then
    all = {}
    for line in io.lines(os.getenv("BENCH_DIR") .. "/refresh.txt") do
      if #line > 0 then table.insert(all, line) end
    end
  end
  -- One token more than connections: wrk 4 calls request() once per thread before the run to build a
  -- request it never sends, which would otherwise cost one connection its token.
  local per = tonumber(os.getenv("BENCH_CONNS_PER_THREAD")) + 1
  local mine = {}
  for i = next_thread * per + 1, next_thread * per + per do
    local t = all[i]
    assert(t, "not enough refresh tokens minted")
    table.insert(mine, t)
  end
  local f = assert(io.open(os.getenv("BENCH_DIR") .. "/client_id"))
  thread:set("client_id", f:read("*a"))
  f:close()
  thread:set("tokens", table.concat(mine, "\n"))
  next_thread = next_thread + 1
end

local pool = {}

function init(args)
  for t in string.gmatch(tokens, "[^\n]+") do table.insert(pool, t) end
end

function request()
  local t = table.remove(pool) or "pool-exhausted"
  return wrk.format("POST", os.getenv("TOKEN_PATH"), { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=refresh_token&client_id=" .. client_id .. "&refresh_token=" .. t)
end

function response(status, headers, body)
  local t = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if t then table.insert(pool, t) end
end
