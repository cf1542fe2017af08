#!lua flags=allow-oom
-- Heartbeat: reset the idle time of the entries this consumer is still working on, so that
-- reclaim (XAUTOCLAIM min-idle) only ever takes entries of consumers that stopped. An entry
-- that is no longer pending on this consumer (another one claimed it, or it was acknowledged)
-- is reported, so its task stops.
-- KEYS[1] stream
-- ARGV[1] group  ARGV[2] this consumer  ARGV[3..] entry ids
-- Returns the entry ids no longer owned by this consumer.
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
