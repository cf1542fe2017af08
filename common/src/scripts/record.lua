#!lua flags=allow-oom
-- Record payments the processors stored (a group commit: several per call): for each,
-- status, summary and acknowledgement change together or not at all. Recording twice is a
-- no-op, so redelivery after a crash cannot double count. No ownership check: a processor's
-- "stored" is the truth whoever learned it. A recorded payment's status hash expires after
-- the retention (PAYMENT_RETENTION: the idempotency window).
-- The summary counts a payment in the buckets of its UTC second, minute, hour and day of
-- requestedAt (fields '<second>', 'm<minute>', 'h<hour>', 'd<day>' of the counts and cents
-- hashes), so a window of any length reads a bounded number of buckets (summary.lua). Each
-- bucket is added to once per call, not once per payment. So is the tenth of a second
-- (field 't<tenth>', see below).
-- While a purge runs (its flag is set) nothing is recorded: the call fails with TRYAGAIN and
-- the worker records again after the purge, into the summary the purge left. An answer for a
-- stream entry that is not the payment's (`sid`: a purge took it, and the id was accepted
-- again since) is 'missing': it counts nothing for the new payment.
-- KEYS[1] stream  KEYS[2..5] default: counts by bucket, cents by bucket, days index, events by requestedAt  KEYS[6..9] the same for fallback  KEYS[10] purge flag  KEYS[10+i] status hash of payment i
-- ARGV[1] group  ARGV[2] retention ms ('' = keep)  ARGV[6i-3] correlation id of payment i  ARGV[6i-2] its processor  ARGV[6i-1] requestedAt (ms)  ARGV[6i] requestedAt second  ARGV[6i+1] cents  ARGV[6i+2] stream entry id ('' = none)
-- Returns one reply per payment, in order: 'ok' | 'dup' | 'missing'
--   | 'overflow' (its second's bucket would overflow; nothing is recorded for it. A minute,
--   hour or day bucket that would overflow is marked 'sat' instead: readers add its parts)
if redis.call('EXISTS', KEYS[10]) == 1 then
  return redis.error_reply('TRYAGAIN a purge is in progress')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = {default = 2, fallback = 6}
-- Lua numbers are doubles: integers are exact below 2^53.
local EXACT = 9007199254740992
-- Below 2^63 with a margin far above a double's rounding there.
local LIMIT = 9.2e18
local out = {}
local todo = {}
local seen = {}
for i = 1, #KEYS - 10 do
  local key = KEYS[10 + i]
  local h = redis.call('HMGET', key, 'st', 'sid')
  local st = h[1]
  local proc = ARGV[6 * i - 2]
  local cents = tonumber(ARGV[6 * i + 1])
  local entry = ARGV[6 * i + 2]
  if not st then
    out[i] = 'missing'
  elseif st == 'processed' or seen[key] then
    -- Processed before, or earlier in this batch: counts once.
    out[i] = 'dup'
  elseif entry ~= '' and h[2] and h[2] ~= entry then
    out[i] = 'missing'
  elseif not base[proc] then
    return redis.error_reply('unknown processor ' .. tostring(proc))
  elseif not cents or cents < 0 or cents >= EXACT or cents ~= math.floor(cents) then
    return redis.error_reply('cents out of range: ' .. tostring(ARGV[6 * i + 1]))
  else
    out[i] = 'ok'
    todo[#todo + 1] = i
    seen[key] = true
  end
end

-- A bucket's sum for this call: {count, partial sums of cents}. Each partial stays below
-- 2^53, so Lua adds it exactly (the cents are not negative: a sum that would reach 2^53 is
-- computed as at least 2^53, and starts a new partial); Redis adds the partials to the
-- bucket with HINCRBY, exactly. One partial unless the call holds over 90 billion in cents.
local function add(parts, cents)
  if parts[#parts] + cents < EXACT then
    parts[#parts] = parts[#parts] + cents
  else
    parts[#parts + 1] = cents
  end
end
-- Adds each bucket's {count, partial sums of cents} to the counts (KEYS[k]) and cents
-- (KEYS[k + 1]) hashes.
local function write(k, buckets)
  for field, b in pairs(buckets) do
    redis.call('HINCRBY', KEYS[k], field, b[1])
    for _, p in ipairs(b[2]) do
      redis.call('HINCRBY', KEYS[k + 1], field, string.format('%d', p))
    end
  end
end
-- The payments `idx` (indices into KEYS and ARGV) summed per processor and bucket field
-- (`field_of(i)`): {count, partial sums of cents}.
local function gather(idx, field_of)
  local sums = {default = {}, fallback = {}}
  for _, i in ipairs(idx) do
    local per = sums[ARGV[6 * i - 2]]
    local field = field_of(i)
    local b = per[field]
    if not b then
      b = {0, {0}}
      per[field] = b
    end
    b[1] = b[1] + 1
    add(b[2], tonumber(ARGV[6 * i + 1]))
  end
  return sums
end
local function total(parts)
  local sum = 0
  for _, p in ipairs(parts) do
    sum = sum + p
  end
  return sum
end

-- Seconds first: the only bucket that refuses. A payment whose second would overflow gets
-- 'overflow' and is left out of everything; the others are recorded.
local seconds = gather(todo, function(i) return ARGV[6 * i] end)
for proc, secs in pairs(seconds) do
  local fields = {}
  for sec in pairs(secs) do
    fields[#fields + 1] = sec
  end
  if #fields > 0 then
    local cur = redis.call('HMGET', KEYS[base[proc] + 1], unpack(fields))
    for k, sec in ipairs(fields) do
      local now_cents = tonumber(cur[k] or '0')
      if not now_cents or now_cents + total(secs[sec][2]) > LIMIT then
        secs[sec] = nil
      end
    end
  end
end
local kept = {}
for _, i in ipairs(todo) do
  if seconds[ARGV[6 * i - 2]][ARGV[6 * i]] then
    kept[#kept + 1] = i
  else
    out[i] = 'overflow'
  end
end
todo = kept

-- The roll-ups, summed from the seconds. One that would overflow is marked 'sat' (and left
-- so): summary.lua then reads its parts, which stay exact.
for proc, secs in pairs(seconds) do
  local k = base[proc]
  local buckets = {}
  local days = {}
  for sec, b in pairs(secs) do
    local s = tonumber(sec)
    local day = math.floor(s / 86400)
    days[day] = true
    for _, field in ipairs({string.format('m%d', math.floor(s / 60)),
        string.format('h%d', math.floor(s / 3600)), string.format('d%d', day)}) do
      local r = buckets[field]
      if not r then
        r = {0, {0}}
        buckets[field] = r
      end
      r[1] = r[1] + b[1]
      for _, p in ipairs(b[2]) do
        add(r[2], p)
      end
    end
  end
  local fields = {}
  for field in pairs(buckets) do
    fields[#fields + 1] = field
  end
  if #fields > 0 then
    local cur = redis.call('HMGET', KEYS[k + 1], unpack(fields))
    for j, field in ipairs(fields) do
      if cur[j] ~= 'sat' then
        local r = buckets[field]
        local now_cents = tonumber(cur[j] or '0')
        if not now_cents or now_cents + total(r[2]) > LIMIT then
          redis.call('HSET', KEYS[k + 1], field, 'sat')
        else
          secs[field] = r
        end
      end
    end
  end
  for day in pairs(days) do
    redis.call('ZADD', KEYS[k + 2], day, day)
  end
  -- Seconds and the roll-ups that are not saturated, now all in `secs`.
  write(k, secs)
end

-- The tenths of a second (fields 't<requestedAt div 100>'): like the second, but kept only
-- as long as the second's millisecond detail (drop_detail.lua; a payment recorded after its
-- second's detail was dropped leaves its tenth for good). A summary edge reads its
-- whole tenths from them and only the rest per payment. Each is at most its second's
-- bucket, which fits.
local tenths = gather(todo, function(i)
  return string.format('t%d', math.floor(tonumber(ARGV[6 * i - 1]) / 100))
end)
for proc, t10 in pairs(tenths) do
  write(base[proc], t10)
end

for _, i in ipairs(todo) do
  local k = base[ARGV[6 * i - 2]]
  redis.call('ZADD', KEYS[k + 3], ARGV[6 * i - 1], ARGV[6 * i - 3] .. ':' .. ARGV[6 * i + 1])
  redis.call('HSET', KEYS[10 + i], 'st', 'processed', 'proc', ARGV[6 * i - 2],
    'req', ARGV[6 * i - 1], 'amb', '0', 'upd', now)
  redis.call('HDEL', KEYS[10 + i], 'err', 'safe', 'safe0', 'held')
  if ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[10 + i], ARGV[2])
  end
end
for i = 1, #KEYS - 10 do
  local entry = ARGV[6 * i + 2]
  if entry ~= '' and out[i] ~= 'overflow' then
    redis.call('XACK', KEYS[1], ARGV[1], entry)
    redis.call('XDEL', KEYS[1], entry)
  end
end
return out
