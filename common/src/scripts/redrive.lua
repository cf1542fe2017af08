-- Re-drive dead letters: each dead-lettered payment becomes queued again with a fresh
-- stream entry, and leaves the dead-letter stream — one entry at a time, atomically.
-- KEYS[1] dead-letter stream  KEYS[2] payment stream
-- ARGV[1] status key prefix ('{p}:pay:')  ARGV[2] most entries  ARGV[3] now (ms)
-- Returns the number of payments re-queued.
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[2])
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
    if redis.call('HGET', key, 'st') == 'failed' then
      redis.call('XADD', KEYS[2], '*', 'id', id, 'amt', amt)
      redis.call('HSET', key, 'st', 'queued', 'att', '0', 'amb', '0', 'upd', ARGV[3])
      redis.call('HDEL', key, 'err', 'proc')
      moved = moved + 1
    end
  end
  redis.call('XDEL', KEYS[1], entry[1])
end
return moved
