-- wrk script: WebDAV PUT of SIZE-byte files to unique paths (nginx's dav_methods PUT), the
-- baseline bench/merge.sh and bench/run.sh set beside multipart uploads. Prints one BENCH
-- line like wrk-upload.lua (a PUT answered other than 201/204 counts as bad).
-- usage: wrk -t1 -c32 -d10s -s wrk-put.lua http://127.0.0.1:PORT/dav/ -- SIZE RUNID
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require("wrk_bench") -- the BENCH line (wrk_bench.lua)
local threads = {}
local size, runid, body, counter, base
bad = 0

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   size = tonumber(args[1])
   runid = args[2] or "x"
   local t = {}
   for i = 1, size do t[i] = string.char(math.random(0, 255)) end
   body = table.concat(t)
   counter = 0
   base = wrk.path
end

function request()
   counter = counter + 1
   local path = string.format("%s%s_%d_%d.bin", base, runid, tid or 0, counter)
   return wrk.format("PUT", path, {["Content-Type"] = "application/octet-stream"}, body)
end

function response(status, headers, body)
   if status ~= 201 and status ~= 204 then
      bad = bad + 1
      if bad <= 3 then
         io.stderr:write(string.format("bad PUT response: HTTP %d\n", status))
      end
   end
end

function done(summary, latency, requests)
   bench.report(summary, latency, threads)
end
