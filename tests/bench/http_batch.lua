-- wrk script: POST /v1/batch with 100 track events of ~300 bytes each (~30 KB), basic auth,
-- keep-alive. Every event gets a unique messageId (so de-duplication accepts them all).
-- Env: WRITE_KEY (default bench-key); RATE = total requests/s to pace at (0 = as fast as
-- possible), WRK_THREADS = wrk's -t (to split RATE between threads).

local key = os.getenv("WRITE_KEY") or "bench-key"
local rate = tonumber(os.getenv("RATE") or "0")
local events_per_request = 100
local people = tonumber(os.getenv("PEOPLE") or "100000")

local function base64(data)
  local b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

-- The body is static text cut where the per-request values go: each event has a userId
-- ("user-<person>-<i>") and a messageId ("<thread>-<request>-<i>"); parts alternate with them.
-- People: PEOPLE distinct persons per thread (default 100000), like a site's traffic, so a
-- destination's batches are not capped by a handful of people (the core sends at most one event
-- per person per call, for strict per-person order).
local parts = {}
local thread_tag = ""
local counter = 0

local threads = {}
function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 1e9)))
  table.insert(threads, thread)
end

function init(args)
  thread_tag = thread_tag or tostring(math.random(1, 1e9))
  local chunks = { '{"batch":[' }
  for i = 1, events_per_request do
    local sep = i > 1 and "," or ""
    chunks[#chunks + 1] = sep .. '{"type":"track","event":"Product Viewed","userId":"user-'
    parts[#parts + 1] = table.concat(chunks)
    chunks = { '-' .. i .. '","properties":{"product_id":"sku-' .. i .. '","price":19.99,"currency":"EUR",' ..
      '"category":"bench","name":"A product with a reasonably long name"},' ..
      '"context":{"library":{"name":"wrk","version":"4"}},"timestamp":"2026-01-01T00:00:00.000Z",' ..
      '"messageId":"' }
    parts[#parts + 1] = table.concat(chunks)
    chunks = { '-' .. i .. '"}' }
  end
  chunks[#chunks + 1] = '],"sentAt":"2026-01-01T00:00:00.100Z"}'
  parts[#parts + 1] = table.concat(chunks)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Basic " .. base64(key .. ":")
end

function request()
  counter = counter + 1
  local id = thread_tag .. "-" .. counter
  local person = tostring(counter % (math.floor(people / events_per_request) + 1))
  local pieces = {}
  for i = 1, #parts - 1 do
    pieces[#pieces + 1] = parts[i]
    pieces[#pieces + 1] = (i % 2 == 1) and person or id
  end
  pieces[#pieces + 1] = parts[#parts]
  return wrk.format(nil, "/v1/batch", nil, table.concat(pieces))
end

-- Pacing (RATE > 0), open loop as wrk2 does it: this thread's k-th request is due at
-- start + k / (RATE / WRK_THREADS), and delay() waits only for what is left until then: a slow
-- answer does not lower the rate (as a fixed pause after each answer would), and requests are
-- spread evenly rather than sent by all connections at once. A request overdue goes at once,
-- on whichever connection is free (wrk takes whole milliseconds).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } junction_timespec;
  int clock_gettime(int clock, junction_timespec* tp);
]]
local now_ts = ffi.new("junction_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end
local wrk_threads = tonumber(os.getenv("WRK_THREADS") or "1")
local next_due = nil
function delay()
  if rate <= 0 then
    return 0
  end
  local now = now_ms()
  next_due = next_due or now
  local due = next_due
  next_due = next_due + 1000 * wrk_threads / rate
  return math.max(0, math.floor(due - now))
end

non200 = 0
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if non200 <= 3 then
      io.stderr:write("non-200: " .. status .. " " .. body .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
  end
  io.write(string.format("non-200 responses: %d\n", bad))
end
