-- wrk script: PUT a SIZE-byte body to the next URL (path + query, e.g. a presigned S3 PUT) of a
-- list file on every request; each body starts with a unique line, so no two are alike.
-- usage: wrk -t1 -c32 -d10s -s wrk-urlput.lua http://127.0.0.1:PORT -- URLS_FILE SIZE
-- A response counts as bad unless it is HTTP 200. Prints one "BENCH k=v ..." line at the end.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require("wrk_bench") -- the BENCH line (wrk_bench.lua)
local threads = {}
local urls = {}
local nurls = 0
local UNIQ = 64
local size, rest, counter
bad = 0

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "r"), "cannot open URL list " .. tostring(args[1]))
   for line in f:lines() do
      if #line > 0 then
         nurls = nurls + 1
         urls[nurls] = line
      end
   end
   f:close()
   assert(nurls > 0, "empty URL list")
   size = tonumber(args[2])
   assert(size and size > UNIQ, "SIZE must be > 64")
   math.randomseed(os.time() * 1000 + (tid or 0))
   local t = {}
   for i = 1, 4096 do t[i] = string.char(math.random(0, 255)) end
   rest = string.rep(table.concat(t), math.ceil(size / 4096)):sub(1, size - UNIQ)
   counter = 0
end

function request()
   counter = counter + 1
   local u = urls[((counter - 1) % nurls) + 1]
   local uniq = string.format("%d_%d", tid or 0, counter)
   uniq = uniq .. string.rep("\n", UNIQ - #uniq)
   local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
   -- The whole request in one concatenation (wrk.format would copy the body a second time;
   -- wrk-upload.lua, its go-fastdfs API counterpart, does the same).
   return "PUT " .. u .. " HTTP/1.1\r\nHost: " .. host ..
      "\r\nContent-Type: application/octet-stream\r\nContent-Length: " .. (UNIQ + #rest) ..
      "\r\n\r\n" .. uniq .. rest
end

function response(status, headers, body)
   if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
   bench.report(summary, latency, threads)
end
