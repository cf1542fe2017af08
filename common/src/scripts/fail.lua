-- Dead-letter a payment: status failed with the reason, a copy on the dead-letter stream,
-- and the stream entry acknowledged — together. A processed payment is never failed, and
-- neither is one that a processor may still hold (an attempt without a known outcome) unless
-- ARGV[6] = 'keep': then the pin and the in-flight mark stay, so a re-drive must first learn
-- from that processor whether it holds the payment (used when a processor answers 422 but its
-- lookup never finds the payment).
-- KEYS[1] status hash  KEYS[2] stream  KEYS[3] dead-letter stream
-- ARGV[1] correlation id  ARGV[2] cents  ARGV[3] reason  ARGV[4] stream entry id ('' = none)
-- ARGV[5] group  ARGV[6] 'keep' | ''
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
if h[2] == '1' and ARGV[6] ~= 'keep' then
  return 'unresolved'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'st', 'failed', 'err', ARGV[3], 'upd', now)
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'amt', ARGV[2], 'reason', ARGV[3], 'at', now)
ack()
return 'ok'
