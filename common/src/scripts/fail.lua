#!lua flags=allow-oom
-- Dead-letter a payment: status failed with the reason, a copy on the dead-letter stream,
-- and the stream entry acknowledged — together. A processed payment is never failed, and
-- neither is one that a processor may still hold (an attempt without a known outcome) unless
-- ARGV[6] = 'keep': then the pin and the in-flight mark stay, so a re-drive must first learn
-- from that processor whether it holds the payment (used when a processor answers 422 but its
-- lookup never finds the payment).
-- KEYS[1] status hash  KEYS[2] stream  KEYS[3] dead-letter stream
-- ARGV[1] correlation id  ARGV[2] cents ('' = the status hash's)  ARGV[3] reason  ARGV[4] stream entry id ('' = none)
-- ARGV[5] group  ARGV[6] 'keep' | 'entry' | ''  ARGV[7] retention ms ('' = keep)  ARGV[8] this consumer  ARGV[9] the caller's attempt ('keep' only)
-- 'entry': the stream entry could not be decoded. It may not be the payment's own (a stray
-- or corrupt copy): unless it is the entry the status hash names, the payment is left alone
-- and only the entry goes to the dead letters; the same when no such payment exists.
-- 'keep' only for the consumer that owns the entry and the payment's latest attempt: a task
-- that lost its entry, or whose attempt a newer one replaced, gets 'stale' and fails nothing.
-- Returns 'ok' | 'processed' | 'unresolved' | 'missing' | 'foreign' | 'stale'
local function ack()
  if ARGV[4] ~= '' then
    redis.call('XACK', KEYS[2], ARGV[5], ARGV[4])
    redis.call('XDEL', KEYS[2], ARGV[4])
  end
end
local h = redis.call('HMGET', KEYS[1], 'st', 'amb', 'amt', 'sid', 'att')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[6] == 'entry' and (not h[1] or (h[4] and h[4] ~= ARGV[4])) then
  redis.call('XADD', KEYS[3], '*', 'entry', ARGV[4], 'named', ARGV[1], 'reason', ARGV[3], 'at', now)
  ack()
  return h[1] and 'foreign' or 'missing'
end
if not h[1] then
  ack()
  return 'missing'
end
if h[1] == 'processed' then
  ack()
  return 'processed'
end
if h[2] == '1' and ARGV[6] == '' then
  return 'unresolved'
end
if ARGV[6] == 'keep' then
  local p = redis.call('XPENDING', KEYS[2], ARGV[5], ARGV[4], ARGV[4], 1)
  if not p[1] or p[1][2] ~= ARGV[8] or (h[5] or '0') ~= ARGV[9] then
    return 'stale'
  end
end
redis.call('HSET', KEYS[1], 'st', 'failed', 'err', ARGV[3], 'upd', now)
local amt = ARGV[2]
if amt == '' then
  amt = h[3]
end
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'amt', amt, 'reason', ARGV[3], 'at', now)
-- A payment a processor may still hold (pin kept, attempt unresolved) keeps its status for
-- good: forgetting it would let the same id be charged elsewhere.
if (ARGV[7] or '') ~= '' and h[2] ~= '1' then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
ack()
return 'ok'
