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

-- The whole request (headers and body) is built once, with fixed-width fields where the
-- per-request values go: each event's userId ("user-<person>-<i>") and messageId
-- ("<thread>-<request>-<i>"). request() writes the new digits into a copy kept in a C buffer
-- (LuaJIT FFI) and returns it as one string: rebuilding the 30 KB body in Lua cost wrk ~35 µs a
-- request, CPU taken from the server on the same cores.
-- People: PEOPLE distinct persons per thread (default 100000), like a site's traffic, so a
-- destination's batches are not capped by a handful of people (the core sends at most one event
-- per person per call, for strict per-person order).
local ffi = require("ffi")
local thread_tag = ""
local counter = 0
local person_count = math.floor(people / events_per_request) + 1
local person_width = #tostring(person_count - 1)
local id_width = 10
local buf, buf_len
local id_at, person_at = {}, {} -- 0-based offsets of the fields in the request

local threads = {}
function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 1e9)))
  table.insert(threads, thread)
end

function init(args)
  thread_tag = thread_tag or tostring(math.random(1, 1e9))
  local person_field = string.rep("0", person_width)
  local id_field = string.rep("0", id_width)
  local body = { '{"batch":[' }
  local len = #body[1]
  local function add(text)
    body[#body + 1] = text
    len = len + #text
  end
  for i = 1, events_per_request do
    add((i > 1 and "," or "") .. '{"type":"track","event":"Product Viewed","userId":"user-')
    person_at[#person_at + 1] = len
    add(person_field)
    add('-' .. i .. '","properties":{"product_id":"sku-' .. i .. '","price":19.99,"currency":"EUR",' ..
      '"category":"bench","name":"A product with a reasonably long name"},' ..
      '"context":{"library":{"name":"wrk","version":"4"}},"timestamp":"2026-01-01T00:00:00.000Z",' ..
      '"messageId":"' .. thread_tag .. '-')
    id_at[#id_at + 1] = len
    add(id_field)
    add('-' .. i .. '"}')
  end
  add('],"sentAt":"2026-01-01T00:00:00.100Z"}')
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Basic " .. base64(key .. ":")
  local raw = wrk.format(nil, "/v1/batch", nil, table.concat(body))
  local head = #raw - len -- wrk.format puts the body last
  for k = 1, #id_at do
    id_at[k] = id_at[k] + head
    person_at[k] = person_at[k] + head
  end
  buf_len = #raw
  buf = ffi.new("char[?]", buf_len)
  ffi.copy(buf, raw, buf_len)
end

function request()
  counter = counter + 1
  local id = string.format("%0" .. id_width .. "d", counter)
  local person = string.format("%0" .. person_width .. "d", counter % person_count)
  for k = 1, #id_at do
    ffi.copy(buf + id_at[k], id, id_width)
    ffi.copy(buf + person_at[k], person, person_width)
  end
  return ffi.string(buf, buf_len)
end

-- Pacing (RATE > 0), open loop as wrk2 does it: this thread's k-th request is due at
-- start + k / (RATE / WRK_THREADS), and delay() waits only for what is left until then: a slow
-- answer does not lower the rate (as a fixed pause after each answer would), and requests are
-- spread evenly rather than sent by all connections at once. A request overdue goes at once,
-- on whichever connection is free (wrk takes whole milliseconds).
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
