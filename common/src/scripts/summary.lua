-- Read both processors' summary pieces for one window in one atomic step, so the two
-- totals always describe the same instant. Sums are done by the caller in 128-bit integers.
-- KEYS[1..4] default: counts, cents, seconds index, events; KEYS[5..8] the same for fallback
-- ARGV[1], ARGV[2] lower edge events range in ms ('' = no lower edge)
-- ARGV[3], ARGV[4] upper edge events range in ms ('' = no upper edge)
-- KEYS[9], KEYS[10] compacted detail of default, fallback (compact.lua: second -> 'off:count:cents ...')
-- ARGV[5], ARGV[6] whole seconds range (scores, may be -inf/+inf; '' = none)
-- Returns per processor {count of whole seconds, {cents of whole seconds}, {edge members}}
-- An edge range (within one second) read from the compacted detail: adds to count and cents.
local function compacted(detail, lo, hi, count, cents)
  lo, hi = tonumber(lo), tonumber(hi)
  local sec = math.floor(lo / 1000)
  local packed = redis.call('HGET', detail, string.format('%d', sec))
  if packed then
    local a, b = lo - sec * 1000, hi - sec * 1000
    for off, k, c in string.gmatch(packed, '(%d+):(%d+):(%d+)') do
      off = tonumber(off)
      if off >= a and off <= b then
        count = count + tonumber(k)
        cents[#cents + 1] = c
      end
    end
  end
  return count
end
local function side(n, c, secs, ev, detail)
  local count = 0
  local cents = {}
  if ARGV[5] ~= '' then
    local seconds = redis.call('ZRANGEBYSCORE', secs, ARGV[5], ARGV[6])
    -- unpack() has a small stack limit: read the buckets in chunks.
    for first = 1, #seconds, 1000 do
      local last = math.min(first + 999, #seconds)
      local chunk = {unpack(seconds, first, last)}
      local counts = redis.call('HMGET', n, unpack(chunk))
      local chunk_cents = redis.call('HMGET', c, unpack(chunk))
      for i = 1, #counts do
        count = count + tonumber(counts[i] or '0')
        cents[#cents + 1] = chunk_cents[i] or '0'
      end
    end
  end
  local edges = {}
  if ARGV[1] ~= '' then
    edges = redis.call('ZRANGEBYSCORE', ev, ARGV[1], ARGV[2])
    count = compacted(detail, ARGV[1], ARGV[2], count, cents)
  end
  if ARGV[3] ~= '' then
    local upper = redis.call('ZRANGEBYSCORE', ev, ARGV[3], ARGV[4])
    count = compacted(detail, ARGV[3], ARGV[4], count, cents)
    for i = 1, #upper do
      edges[#edges + 1] = upper[i]
    end
  end
  return {count, cents, edges}
end
return {side(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[9]),
  side(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[10])}
