#!lua flags=allow-oom
-- An attempt's call ended without a usable answer (timeout, reset, 502/504/408, or a 422 whose
-- lookup did not find the payment): nothing of it can reach the processor after now, so the
-- processor can only store it until now + its queue wait + delay (ARGV[3]). Shortens 'safe' to
-- that (never below the bound of earlier unresolved attempts, never above the begin bound).
-- A 422 means the processor claims to hold the payment: ARGV[4] = '1' marks it 'held', and a
-- held payment never leaves that processor on a 404 (only a lookup that finds it, or a dead
-- letter that keeps the pin, ends it).
-- The caller's stream entry must be the payment's (`sid`): a task of an entry a purge took,
-- its id accepted again since, changes nothing of the new payment.
-- KEYS[1] status hash
-- ARGV[1] processor  ARGV[2] attempt  ARGV[3] grace (ms)  ARGV[4] held '0'|'1'  ARGV[5] the caller's stream entry id
-- Returns {'ok'|'stale', safe (ms), now (ms)}; 'stale' when the attempt is not the latest
-- unresolved one any more (recorded, settled, or a later attempt began).
local h = redis.call('HMGET', KEYS[1], 'proc', 'att', 'amb', 'safe', 'safe0', 'sid')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or h[3] ~= '1' or (h[6] and h[6] ~= ARGV[5]) then
  return {'stale', h[4] or '0', now}
end
local safe = math.max(tonumber(h[5] or '0'), math.min(tonumber(h[4] or '0'), now + tonumber(ARGV[3])))
redis.call('HSET', KEYS[1], 'safe', safe, 'upd', now)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'held', ARGV[1])
end
return {'ok', safe, now}
