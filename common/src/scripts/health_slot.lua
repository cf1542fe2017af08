#!lua flags=allow-oom
-- The deployment-wide health poller of one processor. The processors allow one health
-- call per window for everybody together, so exactly one process holds a lease and only
-- the holder polls, at most once per interval, whoever held the lease before.
-- KEYS[1] lease  KEYS[2] health report hash
-- Poll times come from Redis' clock, so workers with different clocks never share a window.
-- ARGV[1] this process  ARGV[2] poll interval (ms)  ARGV[3] lease ttl (ms)
-- Returns 1 = poll now (the poll time is taken), 0 = leader, not yet, -1 = not the leader.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local polled = tonumber(redis.call('HGET', KEYS[2], 'polled') or '0')
if now - polled < tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[2], 'polled', now)
return 1
