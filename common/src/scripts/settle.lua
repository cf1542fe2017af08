-- The processor definitely does not hold the payment (it answered a definite failure and no
-- earlier attempt is unresolved, or its absence was confirmed after its delay had passed):
-- clear the in-flight mark so the payment may move to the other processor. Only the latest
-- attempt may do this: if another attempt began since (a second consumer working the same
-- entry after a reclaim), its outcome is still unknown and the mark stays.
-- KEYS[1] status hash
-- ARGV[1] processor  ARGV[2] attempt number returned by begin  ARGV[3] now (ms)
-- Returns 1 when cleared, 0 otherwise.
local h = redis.call('HMGET', KEYS[1], 'proc', 'att')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'amb', '0', 'upd', ARGV[3])
return 1
