#!lua flags=allow-oom
-- The processor definitely does not hold the payment: clear the in-flight mark so the payment
-- may move to the other processor. Two ways to know it:
--  'failed': this attempt got a definite failure (5xx of its failure mode, 429, connection
--            refused) and no earlier attempt is unresolved (safe0 = 0). If one is, only this
--            attempt's bound is dropped ('safe' falls back to 'safe0') and the mark stays.
--  'absent': a lookup answered 404 and was asked (Redis time, ARGV[4]) after 'safe' (a store
--            may still happen at 'safe' itself):
--            no attempt so far can still be stored.
-- Only the latest attempt may do this (a later attempt's outcome is still unknown), and never
-- for a payment the processor said it holds (422: 'held').
-- The caller's stream entry must be the payment's (`sid`): a task of an entry a purge took,
-- its id accepted again since, clears nothing of the new payment.
-- KEYS[1] status hash
-- ARGV[1] processor  ARGV[2] attempt  ARGV[3] 'failed'|'absent'  ARGV[4] lookup asked at (ms)  ARGV[5] the caller's stream entry id
-- Returns {'cleared'} | {'stale'} | {'held'} | {'early', safe (ms), now (ms)}
local h = redis.call('HMGET', KEYS[1], 'proc', 'att', 'amb', 'safe', 'safe0', 'held', 'sid')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or h[3] ~= '1' or (h[7] and h[7] ~= ARGV[5]) then
  return {'stale'}
end
if h[6] == ARGV[1] then
  return {'held'}
end
if ARGV[3] == 'failed' then
  local prior = tonumber(h[5] or '0')
  if prior > 0 then
    redis.call('HSET', KEYS[1], 'safe', prior, 'upd', now)
    return {'early', tostring(prior), now}
  end
elseif tonumber(ARGV[4]) <= tonumber(h[4] or '0') then
  return {'early', h[4], now}
end
redis.call('HSET', KEYS[1], 'amb', '0', 'safe', '0', 'safe0', '0', 'upd', now)
return {'cleared'}
