-- wrk script: GET /v1/profiles/user:<id> for a random person among PROFILES (default 1000000)
-- stored as u0 .. u<PROFILES-1> (tests/bench/profiles_bench loads them), with a Profile API
-- token (TOKEN). RATE > 0 paces the requests (open loop, as in http_batch.lua); PATH_ONLY set
-- to a path asks that path instead (the trivial endpoint of the same server, for the ceiling).
-- Use one wrk thread with SEQUENTIAL (each thread would walk from u0).
local profiles = tonumber(os.getenv("PROFILES") or "1000000")
local token = os.getenv("TOKEN") or "bench-token"
local rate = tonumber(os.getenv("RATE") or "0")
local path_only = os.getenv("PATH_ONLY")
local wrk_threads = tonumber(os.getenv("WRK_THREADS") or "1")
-- SEQUENTIAL=1: u0, u1, ... in order (one pass over everyone warms the store's cache)
local sequential = os.getenv("SEQUENTIAL") == "1"
-- START: the first id of a SEQUENTIAL walk (a long walk runs as several wrk runs)
local next_id = tonumber(os.getenv("START") or "0")

local threads = {}
function setup(thread)
  thread:set("seed", math.random(1, 1e9))
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed or 1)
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  if path_only and path_only ~= "" then
    return wrk.format("GET", path_only)
  end
  local id
  if sequential then
    id = next_id % profiles
    next_id = next_id + 1
  else
    id = math.random(0, profiles - 1)
  end
  return wrk.format("GET", "/v1/profiles/user:u" .. id)
end

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } junction_timespec2;
  int clock_gettime(int clock, junction_timespec2* tp);
]]
local now_ts = ffi.new("junction_timespec2")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end
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

function done(summary, latency, requests)
  -- wrk counts answers that are not 2xx/3xx itself: no response() here, which would make
  -- wrk hand every answer's headers and body to lua and slow the client down.
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("p%s %.3f ms\n", p, latency:percentile(p) / 1000))
  end
end
