-- Dead-letter a payment: status failed with the reason, a copy on the dead-letter stream,
-- and the stream entry acknowledged — together. A processed payment is never failed, and
-- neither is one that a processor may still hold (an attempt without a known outcome).
-- KEYS[1] status hash  KEYS[2] stream  KEYS[3] dead-letter stream
-- ARGV[1] correlation id  ARGV[2] cents  ARGV[3] reason  ARGV[4] stream entry id  ARGV[5] group
-- ARGV[6] now (ms)
-- Returns 'ok' | 'processed' | 'unresolved' | 'missing'
local function ack()
  if ARGV[4] ~= '' then
    redis.call('XACK', KEYS[2], ARGV[5], ARGV[4])
    redis.call('XDEL', KEYS[2], ARGV[4])
  end
end
local h = redis.call('HMGET', KEYS[1], 'st', 'amb')
if not h[1] then
  ack()
  return 'missing'
end
if h[1] == 'processed' then
  ack()
  return 'processed'
end
if h[2] == '1' then
  return 'unresolved'
end
redis.call('HSET', KEYS[1], 'st', 'failed', 'err', ARGV[3], 'upd', ARGV[6])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'amt', ARGV[2], 'reason', ARGV[3], 'at', ARGV[6])
ack()
return 'ok'
