-- Shared by every load script: prints one machine-readable line that run.sh parses.
-- errors = socket errors + timeouts + non-2xx/3xx statuses (wrk's "status" count).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d status_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end

-- Two server instances (run.sh --postgres, row portcullis-pg-2x): BENCH_ADDRS lists "host:port host:port"; wrk's
-- threads take them in turn, so each instance gets half of the connections. The Host header stays the first
-- instance's (both serve the same issuer).
local next_addr = 0
function pick_addr(thread)
  local addrs = os.getenv("BENCH_ADDRS")
  if addrs == nil or #addrs == 0 then return end
  local list = {}
  for hp in string.gmatch(addrs, "%S+") do table.insert(list, hp) end
  local host, port = list[(next_addr % #list) + 1]:match("^(.+):(%d+)$")
  thread.addr = wrk.lookup(host, port)[1]
  next_addr = next_addr + 1
end

function setup(thread)
  pick_addr(thread)
end
