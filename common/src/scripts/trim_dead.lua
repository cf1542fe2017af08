#!lua flags=allow-oom
-- Drop dead letters older than the retention, on Redis' clock. Dead letters are a stream
-- without a consumer group (nothing to acknowledge): their age is their entry id's time.
-- A letter whose payment a processor may still hold (dead-lettered with its pin kept: the
-- status stays 'failed' with an unresolved attempt, and never expires) is kept within reach
-- of a re-drive: it is appended again, fresh, before the old copy goes.
-- At most ARGV[3] letters are looked at per call; only what was looked at is trimmed.
-- KEYS[1] dead-letter stream
-- ARGV[1] retention in ms  ARGV[2] status hash key prefix (followed by the correlation id)  ARGV[3] most letters per call
-- Returns the number of dead letters removed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local min = now - tonumber(ARGV[1])
if min <= 0 then
  return 0
end
local old = redis.call('XRANGE', KEYS[1], '-', string.format('(%d-0', min), 'COUNT', tonumber(ARGV[3]))
if #old == 0 then
  return 0
end
for _, letter in ipairs(old) do
  local fields = letter[2]
  local id
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then
      id = fields[i + 1]
    end
  end
  if id then
    local h = redis.call('HMGET', ARGV[2] .. id, 'st', 'amb')
    if h[1] == 'failed' and h[2] == '1' then
      redis.call('XADD', KEYS[1], '*', unpack(fields))
    end
  end
end
-- Everything up to and including the last letter looked at.
local last = old[#old][1]
local ms, seq = string.match(last, '^(%d+)-(%d+)$')
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%s-%d', ms, tonumber(seq) + 1))
