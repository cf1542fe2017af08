-- Accept a payment: create its status hash and append it to the stream, atomically.
-- A correlation id seen before is never appended twice (idempotent replay / conflict).
-- Times come from Redis' own clock, the one clock every script uses.
-- KEYS[1] status hash   KEYS[2] payment stream
-- ARGV[1] correlation id  ARGV[2] amount in cents  ARGV[3] backlog limit (0 = none)
-- Returns {'ok', entry id} | {'dup', status} | {'conflict', stored cents} | {'busy', backlog}
local cur = redis.call('HMGET', KEYS[1], 'amt', 'st')
if cur[1] then
  if cur[1] == ARGV[2] then
    return {'dup', cur[2]}
  end
  return {'conflict', cur[1]}
end
local limit = tonumber(ARGV[3])
if limit > 0 then
  local backlog = redis.call('XLEN', KEYS[2])
  if backlog >= limit then
    return {'busy', tostring(backlog)}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'amt', ARGV[2])
redis.call('HSET', KEYS[1], 'amt', ARGV[2], 'st', 'queued', 'at', now, 'upd', now, 'att', '0',
  'sid', sid)
return {'ok', sid}
