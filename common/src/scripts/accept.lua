#!lua
-- Accept payments: for each, create its status hash and append it to the stream, atomically.
-- A correlation id seen before is never appended twice (idempotent replay / conflict), also
-- within one call. Several concurrent requests share one call (the gateway batches them).
-- Times come from Redis' own clock, the one clock every script uses.
-- With a first-attempt bound (ARGV[2] > 0) the accept also does what begin.lua does for a
-- first attempt: it pins the payment to default, marks the attempt in flight and sets its
-- 'safe' bound, now + ARGV[2]; the entry carries the acceptance time 'at' and that bound. The
-- consumer that reads the entry sends this attempt without begin.lua only while the bound
-- still covers the call (its start within the send window of 'at'); anyone else, or later,
-- goes through begin.lua, which treats the attempt as unresolved like any other. The first
-- attempt's requestedAt is 'at' ('rq0').
-- KEYS[1] payment stream  KEYS[1+i] status hash of payment i
-- ARGV[1] backlog limit (0 = none)  ARGV[2] first-attempt bound (ms, 0 = none)
-- ARGV[2i+1] correlation id of payment i  ARGV[2i+2] its amount in cents
-- Returns one reply per payment, in order:
--   {'ok', entry id} | {'dup', status} | {'conflict', stored cents} | {'busy', backlog}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local first = tonumber(ARGV[2])
local safe = now + first
local out = {}
for i = 1, #KEYS - 1 do
  local key, id, cents = KEYS[1 + i], ARGV[2 * i + 1], ARGV[2 * i + 2]
  local cur = redis.call('HMGET', key, 'amt', 'st')
  if cur[1] then
    if cur[1] == cents then
      out[i] = {'dup', cur[2]}
    else
      out[i] = {'conflict', cur[1]}
    end
  else
    local backlog = limit > 0 and redis.call('XLEN', KEYS[1]) or 0
    if limit > 0 and backlog >= limit then
      out[i] = {'busy', tostring(backlog)}
    else
      if first > 0 then
        local sid = redis.call('XADD', KEYS[1], '*', 'id', id, 'amt', cents, 'at', now,
          'safe', safe)
        redis.call('HSET', key, 'amt', cents, 'st', 'queued', 'at', now, 'upd', now, 'att', '1',
          'sid', sid, 'proc', 'default', 'amb', '1', 'ambat', now, 'safe', safe, 'rq0', now)
        out[i] = {'ok', sid}
      else
        local sid = redis.call('XADD', KEYS[1], '*', 'id', id, 'amt', cents)
        redis.call('HSET', key, 'amt', cents, 'st', 'queued', 'at', now, 'upd', now, 'att', '0',
          'sid', sid)
        out[i] = {'ok', sid}
      end
    end
  end
end
return out
