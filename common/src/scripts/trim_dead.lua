#!lua flags=allow-oom
-- Drop dead letters older than the retention, on Redis' clock. Dead letters are a stream
-- without a consumer group (nothing to acknowledge): their age is their entry id's time.
-- KEYS[1] dead-letter stream
-- ARGV[1] retention in ms
-- Returns the number of dead letters removed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local min = now - tonumber(ARGV[1])
if min <= 0 then
  return 0
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', min))
