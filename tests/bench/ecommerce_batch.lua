-- wrk script: POST /v1/batch with 100 events of an e-commerce site's traffic (~30 KB), basic
-- auth, keep-alive, for tests/bench/audiences_bench. A request is 10 sessions of 10 events, each
-- session one person of PEOPLE (default 100000), chosen at random:
--   identify (email, plan, country, lifetime_value), page, Product Viewed x2, page,
--   Product Viewed, Product Added, Product Viewed, then by session slot s (0..9):
--   s 0-4: Product Added, Order Completed; s 5-7: page, Product Added (a cart left);
--   s 8-9: page, page.
-- Per request: 10 identify, 27 page, 40 Product Viewed, 18 Product Added, 5 Order Completed.
-- Slot s is always given a person p with p % 10 == s, so that a person's traits (derived from
-- p % 10) never change and a person keeps one habit: buyers (0-4), cart abandoners (5-7),
-- browsers (8-9). Timestamps: the current second minus one (the same for the whole request, one
-- millisecond apart within a session, so never in the daemon's future); every event gets a
-- unique messageId. Env: WRITE_KEY (default bench-key), PEOPLE.

local key = os.getenv("WRITE_KEY") or "bench-key"
local people = tonumber(os.getenv("PEOPLE") or "100000")
local sessions, per_session = 10, 10

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

-- As tests/bench/http_batch.lua: the request is built once with fixed-width fields, and
-- request() writes the new values into a copy kept in a C buffer (LuaJIT FFI).
local ffi = require("ffi")
local counter = 0
local person_width = #tostring(people - 1)
local id_width = 10
local ts_width = 19 -- "2026-12-06T23:59:59"
local buf, buf_len
local id_at, ts_at = {}, {}
local person_at = {} -- person_at[s] = offsets of session s's person fields

local plans = { "free", "free", "pro", "free", "team", "pro", "business", "free", "pro", "team" }
local countries = { "NO", "DE", "FR", "SE", "US", "GB", "NO", "DE", "US", "ES" }
local ltv = { 0, 120, 860, 45, 1500, 310, 2400, 0, 640, 75 }
local pages = { "/", "/catalog/shoes", "/catalog/bags", "/sale", "/help/shipping" }

local threads = {}
function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 1e9)))
  table.insert(threads, thread)
end

function init(args)
  thread_tag = thread_tag or tostring(math.random(1, 1e9)) -- a global: setup() sets it
  math.randomseed(tonumber(thread_tag) + os.time())
  local person_field = string.rep("0", person_width)
  local id_field = string.rep("0", id_width)
  local ts_field = string.rep("0", ts_width)
  local body = { '{"batch":[' }
  local len = #body[1]
  local function add(text)
    body[#body + 1] = text
    len = len + #text
  end
  local function person(s)
    person_at[s][#person_at[s] + 1] = len
    add(person_field)
  end
  local n = 0
  local function event(s, j, kind)
    n = n + 1
    add((n > 1 and "," or "") .. '{"userId":"user-')
    person(s)
    add('",')
    local sku = "sku-" .. ((s * 3 + j) % 25)
    if kind == "identify" then
      add('"type":"identify","traits":{"email":"user-')
      person(s)
      add('@example.com","plan":"' .. plans[s + 1] .. '","country":"' .. countries[s + 1] ..
        '","lifetime_value":' .. ltv[s + 1] .. ',"first_name":"Bench","newsletter":true},')
    elseif kind == "page" then
      local path = pages[(s + j) % #pages + 1]
      add('"type":"page","name":"Shop","properties":{"path":"' .. path ..
        '","url":"https://shop.example.com' .. path .. '","title":"Shop","referrer":""},')
    elseif kind == "viewed" then
      add('"type":"track","event":"Product Viewed","properties":{"product_id":"' .. sku ..
        '","price":' .. (19.99 + s) .. ',"currency":"EUR","category":"shoes",' ..
        '"name":"A product with a reasonably long name"},')
    elseif kind == "added" then
      add('"type":"track","event":"Product Added","properties":{"product_id":"' .. sku ..
        '","price":' .. (19.99 + s) .. ',"quantity":1,"currency":"EUR","cart_id":"cart-' .. s .. '"},')
    else -- ordered
      add('"type":"track","event":"Order Completed","properties":{"order_id":"order-' .. s ..
        '","revenue":' .. (39.9 + 20 * s) .. ',"currency":"EUR","products":[{"product_id":"' ..
        sku .. '","quantity":1}]},')
    end
    add('"context":{"library":{"name":"wrk","version":"4"}},"timestamp":"')
    ts_at[#ts_at + 1] = len
    add(ts_field)
    add(string.format('.%03dZ","messageId":"', j) .. thread_tag .. '-')
    id_at[#id_at + 1] = len
    add(id_field)
    add('-' .. n .. '"}')
  end
  for s = 0, sessions - 1 do
    person_at[s] = {}
    local tail
    if s <= 4 then
      tail = { "added", "ordered" }
    elseif s <= 7 then
      tail = { "page", "added" }
    else
      tail = { "page", "page" }
    end
    local kinds = { "identify", "page", "viewed", "viewed", "page", "viewed", "added", "viewed",
      tail[1], tail[2] }
    for j = 1, per_session do
      event(s, j, kinds[j])
    end
  end
  add(']}')
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Basic " .. base64(key .. ":")
  local raw = wrk.format(nil, "/v1/batch", nil, table.concat(body))
  local head = #raw - len -- wrk.format puts the body last
  for k = 1, #id_at do
    id_at[k] = id_at[k] + head
    ts_at[k] = ts_at[k] + head
  end
  for s = 0, sessions - 1 do
    for k = 1, #person_at[s] do
      person_at[s][k] = person_at[s][k] + head
    end
  end
  buf_len = #raw
  buf = ffi.new("char[?]", buf_len)
  ffi.copy(buf, raw, buf_len)
end

local last_second = -1
local buckets = math.max(1, math.floor(people / sessions))
function request()
  counter = counter + 1
  local second = os.time()
  if second ~= last_second then
    last_second = second
    local ts = os.date("!%Y-%m-%dT%H:%M:%S", second - 1)
    for k = 1, #ts_at do
      ffi.copy(buf + ts_at[k], ts, ts_width)
    end
  end
  local id = string.format("%0" .. id_width .. "d", counter)
  for k = 1, #id_at do
    ffi.copy(buf + id_at[k], id, id_width)
  end
  for s = 0, sessions - 1 do
    local p = sessions * math.random(0, buckets - 1) + s
    if p >= people then p = s end
    local digits = string.format("%0" .. person_width .. "d", p)
    local at = person_at[s]
    for k = 1, #at do
      ffi.copy(buf + at[k], digits, person_width)
    end
  end
  return ffi.string(buf, buf_len)
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
