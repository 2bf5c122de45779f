-- wrk script: GET a random path from a list file on every request.
-- usage: wrk -t1 -c64 -d10s -s wrk-get.lua http://127.0.0.1:PORT -- PATHS_FILE
-- Prints one machine-readable "BENCH k=v ..." line at the end (see done()).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require("wrk_bench") -- the BENCH line (wrk_bench.lua)
local threads = {}
local paths = {}
local npaths = 0

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "r"), "cannot open path list " .. tostring(args[1]))
   for line in f:lines() do
      if #line > 0 then
         npaths = npaths + 1
         paths[npaths] = line
      end
   end
   f:close()
   assert(npaths > 0, "empty path list")
   math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
   return wrk.format("GET", paths[math.random(npaths)])
end

function done(summary, latency, requests)
   bench.report(summary, latency, threads)
end
