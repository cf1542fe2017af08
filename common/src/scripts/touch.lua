-- Heartbeat: reset the idle time of the entries this consumer is still working on, so that
-- reclaim (XAUTOCLAIM min-idle) only ever takes entries of consumers that stopped. An entry
-- that another consumer owns by now is left alone.
-- KEYS[1] stream
-- ARGV[1] group  ARGV[2] this consumer  ARGV[3..] entry ids
-- Returns the number of entries touched.
local touched = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
