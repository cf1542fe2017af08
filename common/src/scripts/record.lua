-- Record a payment the processor stored: status, summary and acknowledgement change together
-- or not at all. Recording twice is a no-op, so redelivery after a crash cannot double count.
-- No ownership check: a processor's "stored" is the truth whoever learned it.
-- KEYS[1] status hash  KEYS[2] stream  KEYS[3] counts by second  KEYS[4] cents by second
-- KEYS[5] seconds index  KEYS[6] events by requestedAt
-- ARGV[1] correlation id  ARGV[2] processor  ARGV[3] requestedAt (ms)  ARGV[4] requestedAt second
-- ARGV[5] cents  ARGV[6] stream entry id ('' = none)  ARGV[7] group
-- Returns 'ok' | 'dup' | 'missing'
local function ack()
  if ARGV[6] ~= '' then
    redis.call('XACK', KEYS[2], ARGV[7], ARGV[6])
    redis.call('XDEL', KEYS[2], ARGV[6])
  end
end
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  ack()
  return 'missing'
end
if st == 'processed' then
  ack()
  return 'dup'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The only write that can fail (integer overflow) goes first, so a failure writes nothing.
redis.call('HINCRBY', KEYS[4], ARGV[4], ARGV[5])
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1] .. ':' .. ARGV[5])
redis.call('HSET', KEYS[1], 'st', 'processed', 'proc', ARGV[2], 'req', ARGV[3], 'amb', '0',
  'upd', now)
redis.call('HDEL', KEYS[1], 'err', 'safe', 'safe0', 'held')
ack()
return 'ok'
