-- Re-drive dead letters: each dead-lettered payment becomes queued again with a fresh
-- stream entry, and leaves the dead-letter stream — one entry at a time, atomically.
-- The attempt counter goes on (a late answer to an old attempt can never be taken for a new
-- one), and a payment that was pinned to a processor stays pinned there with an unresolved
-- mark: before it may go elsewhere, that processor's lookup must say it does not hold it.
-- KEYS[1] dead-letter stream  KEYS[2] payment stream
-- ARGV[1] status key prefix ('{p}:pay:')  ARGV[2] most entries
-- Returns the number of payments re-queued.
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = 0
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local id, amt
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then id = fields[i + 1] end
    if fields[i] == 'amt' then amt = fields[i + 1] end
  end
  if id and amt then
    local key = ARGV[1] .. id
    local h = redis.call('HMGET', key, 'st', 'proc')
    if h[1] == 'failed' then
      local sid = redis.call('XADD', KEYS[2], '*', 'id', id, 'amt', amt)
      redis.call('HSET', key, 'st', 'queued', 'sid', sid, 'upd', now)
      if h[2] then
        redis.call('HSET', key, 'amb', '1', 'safe', now, 'safe0', now)
      end
      redis.call('HDEL', key, 'err')
      moved = moved + 1
    end
  end
  redis.call('XDEL', KEYS[1], entry[1])
end
return moved
