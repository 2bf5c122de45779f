-- wrk script: multipart upload (POST, field `file` + output=json) of SIZE-byte files whose
-- content is distinct per request (a unique line at the start), so content dedup never
-- short-circuits the write. File names are unique too (go-fastdfs renames colliding names).
-- usage: wrk -t1 -c32 -d10s -s wrk-upload.lua http://127.0.0.1:PORT/group1/upload -- SIZE RUNID
-- A response counts as bad unless it is HTTP 200 with a JSON "md5" field.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local bench = require("wrk_bench") -- the BENCH line (wrk_bench.lua)
local threads = {}
local boundary = "----fastdfsbench7f3a9c2e61b04d58"
local UNIQ = 64          -- fixed-size unique prefix of every file
local size, runid, rest, counter, upath
bad = 0                  -- global: read by done() through thread:get

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   size = tonumber(args[1])
   runid = args[2] or "x"
   assert(size and size > UNIQ, "SIZE must be > 64")
   math.randomseed(os.time() * 1000 + (tid or 0))
   local t = {}
   for i = 1, 4096 do t[i] = string.char(math.random(0, 255)) end
   local block = table.concat(t)
   rest = string.rep(block, math.ceil(size / 4096)):sub(1, size - UNIQ)
   counter = 0
   upath = wrk.path
end

function request()
   counter = counter + 1
   local name = string.format("u%s_%d_%d.bin", runid, tid or 0, counter)
   local uniq = name .. string.rep("\n", UNIQ - #name)
   local p1 = "--" .. boundary .. "\r\n" ..
      "Content-Disposition: form-data; name=\"output\"\r\n\r\njson\r\n" ..
      "--" .. boundary .. "\r\n" ..
      "Content-Disposition: form-data; name=\"file\"; filename=\"" .. name .. "\"\r\n" ..
      "Content-Type: application/octet-stream\r\n\r\n"
   local tail = "\r\n--" .. boundary .. "--\r\n"
   local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
   -- The whole request in one concatenation: building the body and then the request with
   -- wrk.format copied each 1 MiB body twice, and the load generator's core ran out first.
   return "POST " .. upath .. " HTTP/1.1\r\nHost: " .. host ..
      "\r\nContent-Type: multipart/form-data; boundary=" .. boundary ..
      "\r\nContent-Length: " .. (#p1 + UNIQ + #rest + #tail) .. "\r\n\r\n" ..
      p1 .. uniq .. rest .. tail
end

function response(status, headers, body)
   if status ~= 200 or not string.find(body, '"md5":%s*"%x+"') then
      bad = bad + 1
      if bad <= 3 then
         io.stderr:write(string.format("bad upload response: HTTP %d: %s\n", status,
            string.sub(body or "", 1, 300)))
      end
   end
end

function done(summary, latency, requests)
   bench.report(summary, latency, threads)
end
