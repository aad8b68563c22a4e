-- Shared by every load script: prints one machine-readable line that run.sh parses.
-- errors = socket errors + timeouts + non-2xx/3xx statuses (wrk's "status" count).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d status_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
