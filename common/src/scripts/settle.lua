-- The processor definitely does not hold the payment (it answered a definite failure and no
-- earlier attempt is unresolved, or its absence was confirmed after its delay had passed):
-- clear the in-flight mark so the payment may move to the other processor.
-- KEYS[1] status hash
-- ARGV[1] processor  ARGV[2] now (ms)
-- Returns 1 when cleared, 0 when the hash is pinned elsewhere or gone.
local proc = redis.call('HGET', KEYS[1], 'proc')
if proc ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'amb', '0', 'upd', ARGV[2])
return 1
