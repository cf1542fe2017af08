-- Record payments the processors stored (a group commit: several per call): for each,
-- status, summary and acknowledgement change together or not at all. Recording twice is a
-- no-op, so redelivery after a crash cannot double count. No ownership check: a processor's
-- "stored" is the truth whoever learned it. A recorded payment's status hash expires after
-- the retention (PAYMENT_RETENTION: the idempotency window).
-- KEYS[1] stream  KEYS[2..5] default: counts by second, cents by second, seconds index, events by requestedAt  KEYS[6..9] the same for fallback  KEYS[9+i] status hash of payment i
-- ARGV[1] group  ARGV[2] retention ms ('' = keep)  ARGV[6i-3] correlation id of payment i  ARGV[6i-2] its processor  ARGV[6i-1] requestedAt (ms)  ARGV[6i] requestedAt second  ARGV[6i+1] cents  ARGV[6i+2] stream entry id ('' = none)
-- Returns one reply per payment, in order: 'ok' | 'dup' | 'missing'
--   | 'overflow' (its summary bucket would overflow; nothing is recorded for it)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = {default = 2, fallback = 6}
local out = {}
local todo = {}
-- Per processor and second: the count to add (one HINCRBY per bucket, not per payment) and
-- an estimate of the cents for the overflow check. Cents themselves are added by Redis, one
-- HINCRBY each: Lua numbers are doubles, exact only up to 2^53.
local buckets = {default = {}, fallback = {}}
local seen = {}
for i = 1, #KEYS - 9 do
  local key = KEYS[9 + i]
  local st = redis.call('HGET', key, 'st')
  local proc = ARGV[6 * i - 2]
  if not st then
    out[i] = 'missing'
  elseif st == 'processed' or seen[key] then
    -- Processed before, or earlier in this batch: counts once.
    out[i] = 'dup'
  elseif not base[proc] then
    return redis.error_reply('unknown processor ' .. tostring(proc))
  else
    out[i] = 'ok'
    todo[#todo + 1] = i
    seen[key] = true
    local sec = ARGV[6 * i]
    local b = buckets[proc][sec] or {0, 0}
    b[1] = b[1] + 1
    b[2] = b[2] + tonumber(ARGV[6 * i + 1])
    buckets[proc][sec] = b
  end
end
-- The only writes that can fail are the HINCRBYs (integer overflow of a bucket): check
-- them before writing anything; the payments of a bucket that would overflow are left out
-- (each gets 'overflow'), the others are recorded. (Lua numbers are doubles: the margin
-- below 2^63 is far above their rounding there.)
local full = {default = {}, fallback = {}}
for proc, secs in pairs(buckets) do
  for sec, b in pairs(secs) do
    local cur = tonumber(redis.call('HGET', KEYS[base[proc] + 1], sec) or '0')
    if cur + b[2] > 9.2e18 then
      full[proc][sec] = true
      secs[sec] = nil
    end
  end
end
local kept = {}
for _, i in ipairs(todo) do
  if full[ARGV[6 * i - 2]][ARGV[6 * i]] then
    out[i] = 'overflow'
  else
    kept[#kept + 1] = i
  end
end
todo = kept
for proc, secs in pairs(buckets) do
  local k = base[proc]
  for sec, b in pairs(secs) do
    redis.call('HINCRBY', KEYS[k], sec, b[1])
    redis.call('ZADD', KEYS[k + 2], sec, sec)
  end
end
for _, i in ipairs(todo) do
  local k = base[ARGV[6 * i - 2]]
  redis.call('HINCRBY', KEYS[k + 1], ARGV[6 * i], ARGV[6 * i + 1])
  redis.call('ZADD', KEYS[k + 3], ARGV[6 * i - 1], ARGV[6 * i - 3] .. ':' .. ARGV[6 * i + 1])
  redis.call('HSET', KEYS[9 + i], 'st', 'processed', 'proc', ARGV[6 * i - 2],
    'req', ARGV[6 * i - 1], 'amb', '0', 'upd', now)
  redis.call('HDEL', KEYS[9 + i], 'err', 'safe', 'safe0', 'held')
  if ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[9 + i], ARGV[2])
  end
end
for i = 1, #KEYS - 9 do
  local entry = ARGV[6 * i + 2]
  if entry ~= '' and out[i] ~= 'overflow' then
    redis.call('XACK', KEYS[1], ARGV[1], entry)
    redis.call('XDEL', KEYS[1], entry)
  end
end
return out
