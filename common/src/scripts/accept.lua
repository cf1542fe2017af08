-- Accept a payment: create its status hash and append it to the stream, atomically.
-- A correlation id seen before is never appended twice (idempotent replay / conflict).
-- KEYS[1] status hash   KEYS[2] payment stream
-- ARGV[1] correlation id  ARGV[2] amount in cents  ARGV[3] now (ms)  ARGV[4] backlog limit (0 = none)
-- Returns {'ok', entry id} | {'dup', status} | {'conflict', stored cents} | {'busy', backlog}
local cur = redis.call('HMGET', KEYS[1], 'amt', 'st')
if cur[1] then
  if cur[1] == ARGV[2] then
    return {'dup', cur[2]}
  end
  return {'conflict', cur[1]}
end
local limit = tonumber(ARGV[4])
if limit > 0 then
  local backlog = redis.call('XLEN', KEYS[2])
  if backlog >= limit then
    return {'busy', tostring(backlog)}
  end
end
local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'amt', ARGV[2])
redis.call('HSET', KEYS[1], 'amt', ARGV[2], 'st', 'queued', 'at', ARGV[3], 'upd', ARGV[3], 'att', '0')
return {'ok', sid}
