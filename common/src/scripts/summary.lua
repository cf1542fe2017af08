#!lua flags=no-writes
-- Read both processors' whole buckets for one window, and then the reads of the window's
-- partial edge seconds (the per-payment index and the compacted detail, returned raw and
-- parsed by the caller: Lua would spend ~0.2-0.7 us per payment on them), all in this one
-- script, so the two totals always describe the same instant. One script, not MULTI/EXEC:
-- a transaction is refused while Redis memory is full, and a summary must still answer then
-- (no-writes: it runs under a full memory, and Redis refuses any write it would attempt).
-- Sums are done by the caller in 128-bit integers. The caller splits the window: whole
-- seconds, minutes and hours up to the first and from the last whole day (at most
-- 2 x 59 + 2 x 59 + 2 x 23 buckets), and whole days, found through the days index.
-- A roll-up bucket is read through its parts instead when it is saturated ('sat', see
-- record.lua) or spans a second not rolled up yet (the seconds index of versions before them,
-- rebuild.lua), so every total stays exact.
-- KEYS[1..4] default: counts by bucket, cents by bucket, days index, seconds not rolled up yet  KEYS[5..8] the same for fallback
-- ARGV[1], ARGV[2] whole days range (scores, may be -inf/+inf; '' = none)
-- ARGV[3] m, the number of other whole buckets  ARGV[4..3+m] those buckets: fields '<second>', 'm<minute>', 'h<hour>'
-- ARGV[4+m..] edge reads, each as <argument count> <command> <arguments> (GET, HGET, HMGET, ZRANGEBYSCORE)
-- Returns {{per processor {count, {cents of each bucket read}}}, {each edge read's reply, in order}}
local SIZE = {d = 86400, h = 3600, m = 60}
-- A roll-up bucket's kind and number ('d12' -> 'd', 12); nil for a second.
local function rollup(field)
  local kind = string.sub(field, 1, 1)
  if SIZE[kind] then
    return kind, tonumber(string.sub(field, 2))
  end
end
-- The buckets one level down.
local function parts(kind, n)
  local out = {}
  if kind == 'd' then
    for h = n * 24, n * 24 + 23 do
      out[#out + 1] = string.format('h%d', h)
    end
  elseif kind == 'h' then
    for m = n * 60, n * 60 + 59 do
      out[#out + 1] = string.format('m%d', m)
    end
  else
    for s = n * 60, n * 60 + 59 do
      out[#out + 1] = string.format('%d', s)
    end
  end
  return out
end
local function bound(score, scale, offset)
  if score == '-inf' or score == '+inf' then
    return score
  end
  return string.format('%d', tonumber(score) * scale + offset)
end
local function side(k)
  local n, c, days, legacy = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local pending = redis.call('EXISTS', legacy) == 1
  local fields = {}
  for j = 4, 3 + tonumber(ARGV[3]) do
    fields[#fields + 1] = ARGV[j]
  end
  if ARGV[1] ~= '' then
    local listed = {}
    for _, d in ipairs(redis.call('ZRANGEBYSCORE', days, ARGV[1], ARGV[2])) do
      listed[d] = true
      fields[#fields + 1] = 'd' .. d
    end
    if pending then
      -- Days with seconds not rolled up yet may be missing from the index.
      local secs = redis.call('ZRANGEBYSCORE', legacy, bound(ARGV[1], 86400, 0),
        bound(ARGV[2], 86400, 86399))
      for _, s in ipairs(secs) do
        local d = string.format('%d', math.floor(tonumber(s) / 86400))
        if not listed[d] then
          listed[d] = true
          fields[#fields + 1] = 'd' .. d
        end
      end
    end
  end
  local count = 0
  local cents = {}
  while #fields > 0 do
    local deeper = {}
    -- unpack() has a small stack limit: read the buckets in chunks.
    for first = 1, #fields, 1000 do
      local chunk = {unpack(fields, first, math.min(first + 999, #fields))}
      local counts = redis.call('HMGET', n, unpack(chunk))
      local sums = redis.call('HMGET', c, unpack(chunk))
      for j, field in ipairs(chunk) do
        -- Only a saturated bucket (never a second) or one that may span seconds not rolled
        -- up yet needs its kind: the common case costs a comparison.
        local kind, num
        if sums[j] == 'sat' or pending then
          kind, num = rollup(field)
        end
        local whole = true
        if sums[j] == 'sat' then
          whole = false
        elseif kind then
          local lo = num * SIZE[kind]
          local hit = redis.call('ZRANGEBYSCORE', legacy, lo, lo + SIZE[kind] - 1, 'LIMIT', 0, 1)
          whole = #hit == 0
        end
        if not whole then
          for _, part in ipairs(parts(kind, num)) do
            deeper[#deeper + 1] = part
          end
        elseif counts[j] then
          count = count + tonumber(counts[j])
          cents[#cents + 1] = sums[j] or '0'
        end
      end
    end
    fields = deeper
  end
  return {count, cents}
end
local READS = {GET = true, HGET = true, HMGET = true, ZRANGEBYSCORE = true}
local reads = {}
local i = 4 + tonumber(ARGV[3])
while i <= #ARGV do
  local argc = tonumber(ARGV[i])
  local command = ARGV[i + 1]
  if not READS[command] then
    return redis.error_reply('summary: not an edge read: ' .. tostring(command))
  end
  reads[#reads + 1] = redis.call(unpack(ARGV, i + 1, i + argc))
  i = i + argc + 1
end
return {{side(1), side(5)}, reads}
