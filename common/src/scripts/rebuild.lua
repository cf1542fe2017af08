#!lua flags=allow-oom
-- Roll up the summary seconds recorded by versions before the roll-ups (they listed every
-- second in a seconds index and wrote no minute, hour or day): for the earliest hours still
-- listed, every minute of the hour, the hour and its day are recomputed from their parts,
-- and the hour's seconds leave the index. Recomputing from the parts is right whenever it
-- runs, since record.lua adds a payment to every level at once: it may run beside the
-- pipeline, and twice. Until an hour is rolled up, summary.lua reads the roll-ups that span
-- it through their parts.
-- KEYS[1] counts by bucket  KEYS[2] cents by bucket  KEYS[3] days index  KEYS[4] seconds not rolled up yet
-- ARGV[1] most hours rolled up by this call
-- Returns the number of hours rolled up (below ARGV[1] once none is left).
local LIMIT = 9.2e18
-- Sets `field` to the sum of `parts` (absent when they are all absent; 'sat' when the cents
-- would overflow or a part is saturated). Redis adds the cents (HINCRBY): exact.
local function recompute(field, parts)
  local counts = redis.call('HMGET', KEYS[1], unpack(parts))
  local sums = redis.call('HMGET', KEYS[2], unpack(parts))
  local count, approx, sat = 0, 0, false
  for j = 1, #parts do
    if counts[j] then
      count = count + tonumber(counts[j])
    end
    if sums[j] == 'sat' then
      sat = true
    elseif sums[j] then
      approx = approx + tonumber(sums[j])
    end
  end
  if count == 0 and not sat then
    redis.call('HDEL', KEYS[1], field)
    redis.call('HDEL', KEYS[2], field)
    return false
  end
  redis.call('HSET', KEYS[1], field, string.format('%d', count))
  if sat or approx > LIMIT then
    redis.call('HSET', KEYS[2], field, 'sat')
  else
    redis.call('HSET', KEYS[2], field, '0')
    for j = 1, #parts do
      if sums[j] then
        redis.call('HINCRBY', KEYS[2], field, sums[j])
      end
    end
  end
  return true
end
local done = 0
while done < tonumber(ARGV[1]) do
  local first = redis.call('ZRANGE', KEYS[4], 0, 0)
  if #first == 0 then
    break
  end
  local hour = math.floor(tonumber(first[1]) / 3600)
  for m = hour * 60, hour * 60 + 59 do
    local seconds = {}
    for s = m * 60, m * 60 + 59 do
      seconds[#seconds + 1] = string.format('%d', s)
    end
    recompute(string.format('m%d', m), seconds)
  end
  local minutes = {}
  for m = hour * 60, hour * 60 + 59 do
    minutes[#minutes + 1] = string.format('m%d', m)
  end
  recompute(string.format('h%d', hour), minutes)
  local day = math.floor(hour / 24)
  local hours = {}
  for h = day * 24, day * 24 + 23 do
    hours[#hours + 1] = string.format('h%d', h)
  end
  if recompute(string.format('d%d', day), hours) then
    redis.call('ZADD', KEYS[3], day, day)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], hour * 3600, hour * 3600 + 3599)
  done = done + 1
end
return done
