#!lua flags=allow-oom
-- Purge one batch of payments found by SCAN: a payment goes with its stream entry or not at
-- all, so a POST concurrent with a purge is either wholly cleared or wholly kept (never a
-- "queued" status whose entry was trimmed). A payment whose entry is newer than the purge's
-- starting point (ARGV[2]) was accepted during the purge and is kept whatever its state: one
-- dead-lettered meanwhile keeps its status beside its dead letter, which the purge keeps too.
-- Every call (the first with no status hash, before the starting point is read) sets the
-- purge flag for ARGV[3] ms: record.lua refuses while it is set, so a payment kept here
-- cannot add its share to the summary before the purge's last step wipes the summary and
-- clears the flag together (Store::purge). The expiry ends a purge that died half-way.
-- KEYS[1] stream  KEYS[2] purge flag  KEYS[3..] status hashes
-- ARGV[1] group  ARGV[2] last stream entry id when the purge started ('0-0' = empty)  ARGV[3] purge flag expiry ms
-- Returns the number of payments deleted.
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then
    return true
  end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then
    return am < bm
  end
  return tonumber(as) <= tonumber(bs)
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
local deleted = 0
for i = 3, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'st', 'sid')
  if h[1] then
    if not h[2] or older(h[2], ARGV[2]) then
      if h[2] then
        redis.call('XACK', KEYS[1], ARGV[1], h[2])
        redis.call('XDEL', KEYS[1], h[2])
      end
      redis.call('UNLINK', KEYS[i])
      deleted = deleted + 1
    end
  end
end
return deleted
