#!lua
-- Begin one send attempt per payment of a batch: confirm this consumer still owns the
-- payment's stream entry, pin the payment to a processor BEFORE the call is made, and mark
-- the attempt in flight until its outcome is known. A payment whose pinned processor may
-- still hold an unresolved attempt is never handed to the other processor: that is how no
-- payment is ever stored by both, even across a crash.
-- The ownership check is the fence: a consumer that lost the entry to a claim (it was frozen,
-- or its heartbeat stopped) gets 'lost' and sends nothing. Confirming ownership also resets the
-- entry's idle time, so nobody can claim it for WORKER_CLAIM_IDLE_MS from now.
-- 'safe' is the Redis time from which a lookup answering 404 proves that no attempt so far can
-- still be stored: now + the payment's bound, which covers the window in which the caller may
-- still start the call, its client timeout and the processor's queue wait + delay. 'safe0' is
-- the same bound for the attempts before this one (0 when none is unresolved).
-- 'rq0' keeps the earliest requestedAt any attempt sent, written before the send: a processor
-- that shows this payment's id with an older requestedAt holds an earlier payment (an id used
-- again after its status expired), told apart without comparing two machines' clocks.
-- KEYS[1] stream  KEYS[1+i] status hash of payment i
-- ARGV[1] group  ARGV[2] this consumer  ARGV[4i-1] wanted processor of payment i  ARGV[4i] its stream entry id  ARGV[4i+1] its bound (ms)  ARGV[4i+2] the requestedAt it will send (ms)
-- Returns one reply per payment, in order:
--   {'go', processor, attempt, earlier attempt unresolved '0'|'1'}
--   | {'pinned', processor, safe (ms), attempt, now (ms)}  (use that processor or confirm absence)
--   | {'done', status, processor}                         (already processed / dead-lettered)
--   | {'missing'}                                          (purged)
--   | {'lost'}                                             (not pending on this consumer: stop)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function begin(key, wanted, entry, bound, requested)
  local h = redis.call('HMGET', key, 'amt', 'st', 'proc', 'amb', 'safe', 'att', 'rq0')
  if not h[1] then
    return {'missing'}
  end
  if h[2] == 'processed' or h[2] == 'failed' then
    return {'done', h[2], h[3] or ''}
  end
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
  if not p[1] or p[1][2] ~= ARGV[2] then
    return {'lost'}
  end
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, entry, 'JUSTID')
  local prior = 0
  local prev_amb = '0'
  if h[3] and h[4] == '1' then
    local pinned_safe = h[5]
    if not pinned_safe then
      -- Pinned by a version that kept no bound: assume the longest one, from now.
      pinned_safe = tostring(now + tonumber(bound))
      redis.call('HSET', key, 'safe', pinned_safe, 'safe0', pinned_safe)
    end
    if h[3] ~= wanted then
      return {'pinned', h[3], pinned_safe, h[6] or '0', now}
    end
    prior = tonumber(pinned_safe)
    prev_amb = '1'
  end
  local att = tonumber(h[6] or '0') + 1
  local safe = math.max(prior, now + tonumber(bound))
  local rq0 = requested
  if h[7] and tonumber(h[7]) < tonumber(requested) then
    rq0 = h[7]
  end
  redis.call('HSET', key, 'st', 'processing', 'proc', wanted, 'amb', '1', 'ambat', now,
    'safe', safe, 'safe0', prior, 'att', att, 'upd', now, 'rq0', rq0)
  return {'go', wanted, att, prev_amb}
end
local out = {}
for i = 1, #KEYS - 1 do
  out[i] = begin(KEYS[1 + i], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1], ARGV[4 * i + 2])
end
return out
