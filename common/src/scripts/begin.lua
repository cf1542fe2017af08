-- Begin one send attempt: pin the payment to a processor BEFORE the call is made, and mark
-- the attempt as in flight ("ambiguous") until its outcome is known. A payment whose pinned
-- processor may still hold an unresolved attempt is never handed to the other processor:
-- that is how no payment is ever stored by both, even across a crash.
-- KEYS[1] status hash
-- ARGV[1] wanted processor  ARGV[2] now (ms)
-- Returns {'go', processor, attempts, previously ambiguous '0'|'1'}
--       | {'pinned', processor, ambiguous since (ms), attempts}  (use that processor or confirm absence)
--       | {'done', status, processor}                   (already processed / dead-lettered)
--       | {'missing'}                                    (purged)
local h = redis.call('HMGET', KEYS[1], 'amt', 'st', 'proc', 'amb', 'ambat', 'att')
if not h[1] then
  return {'missing'}
end
if h[2] == 'processed' or h[2] == 'failed' then
  return {'done', h[2], h[3] or ''}
end
local prev_amb = '0'
if h[3] and h[4] == '1' then
  if h[3] ~= ARGV[1] then
    return {'pinned', h[3], h[5] or '0', h[6] or '0'}
  end
  prev_amb = '1'
end
local att = tonumber(h[6] or '0') + 1
redis.call('HSET', KEYS[1], 'st', 'processing', 'proc', ARGV[1], 'amb', '1', 'ambat', ARGV[2],
  'att', att, 'upd', ARGV[2])
return {'go', ARGV[1], att, prev_amb}
