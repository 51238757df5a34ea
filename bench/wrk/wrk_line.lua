-- The one machine-readable line every wrk script of `scripts/bench` prints
-- at the end (latencies in microseconds), which the script parses. Loaded
-- with dofile from the repository root, where scripts/bench runs wrk.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d seconds=%.3f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
