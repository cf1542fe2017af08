-- Begin one send attempt: confirm this consumer still owns the stream entry, pin the payment
-- to a processor BEFORE the call is made, and mark the attempt in flight until its outcome is
-- known. A payment whose pinned processor may still hold an unresolved attempt is never handed
-- to the other processor: that is how no payment is ever stored by both, even across a crash.
-- The ownership check is the fence: a consumer that lost the entry to a claim (it was frozen,
-- or its heartbeat stopped) gets 'lost' and sends nothing. Confirming ownership also resets the
-- entry's idle time, so nobody can claim it for WORKER_CLAIM_IDLE_MS from now.
-- 'safe' is the Redis time from which a lookup answering 404 proves that no attempt so far can
-- still be stored: now + ARGV[5], where ARGV[5] covers the window in which the caller may still
-- start the call, its client timeout and the processor's queue wait + delay. 'safe0' is the same
-- bound for the attempts before this one (0 when none is unresolved).
-- KEYS[1] status hash  KEYS[2] stream
-- ARGV[1] wanted processor  ARGV[2] group  ARGV[3] this consumer  ARGV[4] stream entry id
-- ARGV[5] bound (ms)
-- Returns {'go', processor, attempt, earlier attempt unresolved '0'|'1'}
--       | {'pinned', processor, safe (ms), attempt, now (ms)}  (use that processor or confirm absence)
--       | {'done', status, processor}                         (already processed / dead-lettered)
--       | {'missing'}                                          (purged)
--       | {'lost'}                                             (not pending on this consumer: stop)
local h = redis.call('HMGET', KEYS[1], 'amt', 'st', 'proc', 'amb', 'safe', 'att')
if not h[1] then
  return {'missing'}
end
if h[2] == 'processed' or h[2] == 'failed' then
  return {'done', h[2], h[3] or ''}
end
local p = redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[4], ARGV[4], 1)
if not p[1] or p[1][2] ~= ARGV[3] then
  return {'lost'}
end
redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, ARGV[4], 'JUSTID')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prior = 0
local prev_amb = '0'
if h[3] and h[4] == '1' then
  if h[3] ~= ARGV[1] then
    return {'pinned', h[3], h[5] or '0', h[6] or '0', now}
  end
  prior = tonumber(h[5] or '0')
  prev_amb = '1'
end
local att = tonumber(h[6] or '0') + 1
local safe = math.max(prior, now + tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'st', 'processing', 'proc', ARGV[1], 'amb', '1', 'ambat', now,
  'safe', safe, 'safe0', prior, 'att', att, 'upd', now)
return {'go', ARGV[1], att, prev_amb}
