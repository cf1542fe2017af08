#!lua
-- Re-drive dead letters: each dead-lettered payment becomes queued again with a fresh
-- stream entry, and leaves the dead-letter stream — one entry at a time, atomically.
-- The attempt counter goes on (a late answer to an old attempt can never be taken for a new
-- one), and a payment that was pinned to a processor stays pinned there with an unresolved
-- mark: before it may go elsewhere, that processor's lookup must say it does not hold it.
-- A letter whose payment is no longer failed (re-driven or processed since) or gone is
-- removed; a letter that names no payment (an undecodable entry) stays for a person to read.
-- KEYS[1] dead-letter stream  KEYS[2] payment stream
-- ARGV[1] status key prefix ('{p}:pay:')  ARGV[2] most letters to read  ARGV[3] read after this letter id ('0-0' = from the start)
-- Returns {payments re-queued, id of the last letter read ('' = none left)}
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[3], '+', 'COUNT', ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = 0
local last = ''
for _, entry in ipairs(entries) do
  last = entry[1]
  local fields = entry[2]
  local id, amt
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then id = fields[i + 1] end
    if fields[i] == 'amt' then amt = fields[i + 1] end
  end
  if id and amt then
    local key = ARGV[1] .. id
    local h = redis.call('HMGET', key, 'st', 'proc', 'safe')
    if h[1] == 'failed' then
      local sid = redis.call('XADD', KEYS[2], '*', 'id', id, 'amt', amt)
      redis.call('HSET', key, 'st', 'queued', 'sid', sid, 'upd', now)
      redis.call('PERSIST', key)
      if h[2] then
        local safe = math.max(tonumber(h[3] or '0'), now)
        redis.call('HSET', key, 'amb', '1', 'safe', safe, 'safe0', safe)
      end
      redis.call('HDEL', key, 'err')
      moved = moved + 1
    end
    redis.call('XDEL', KEYS[1], entry[1])
  end
end
return {moved, last}
