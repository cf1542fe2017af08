#!lua flags=allow-oom
-- Stale consumer cleanup: delete the consumers of the group that hold no pending entry and
-- have been idle at least ARGV[2] ms, except this one. Check and delete in one script: a
-- consumer deleted by a separate call after it read entries would take them out of its
-- pending list, out of reach of XAUTOCLAIM and XREADGROUP for good. It only shrinks state,
-- so it runs when Redis memory is full too (allow-oom).
-- KEYS[1] stream
-- ARGV[1] group  ARGV[2] least idle ms  ARGV[3] this consumer
-- Returns the names deleted.
local deleted = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do
    info[c[i]] = c[i + 1]
  end
  if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2]) and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    deleted[#deleted + 1] = info['name']
  end
end
return deleted
