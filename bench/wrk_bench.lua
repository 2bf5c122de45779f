-- Shared by the wrk-*.lua scripts (loaded with require, from the scripts' own directory): the
-- one machine-readable "BENCH k=v ..." line that bench/*.sh and bench/*.py parse, printed by
-- each script's done(). `threads`: the wrk threads, whose global `bad` counts the responses
-- the script judged wrong (0 where a script sets none).
local M = {}

function M.report(summary, latency, threads)
   local b = 0
   for _, t in ipairs(threads) do b = b + (tonumber(t:get("bad")) or 0) end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d mean_us=%.1f max_us=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d bad=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, b))
end

return M
