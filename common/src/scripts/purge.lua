#!lua flags=allow-oom
-- Purge one batch of payments found by SCAN: a payment goes with its stream entry or not at
-- all, so a POST concurrent with a purge is either wholly cleared or wholly kept (never a
-- "queued" status whose entry was trimmed). A payment whose entry is newer than the purge's
-- starting point (ARGV[2]) was accepted during the purge and is kept whatever its state: one
-- dead-lettered meanwhile keeps its status beside its dead letter, which the purge keeps too.
-- The purge flag belongs to the purge that took it: Store::purge_start calls this with no
-- status hash and ARGV[5] 'start', which takes the flag (SET NX PX, the purge's random token)
-- or fails with PURGERUNNING while another purge holds it (a script: at a full memory too).
-- Every other call, one per SCAN page (a page without payment keys too), first checks that
-- the flag still holds this purge's token and renews it for ARGV[3] ms. A flag that expired
-- (records ran again meanwhile) or that another purge took means this purge lost it: the call
-- deletes nothing and fails, and the purge stops before its last step could wipe shares
-- recorded while it held no flag. record.lua refuses while the flag is set, so a payment kept
-- here cannot add its share to the summary before the purge's last step (purge_finish.lua)
-- wipes the summary and clears the flag together. The expiry ends a purge that died half-way.
-- KEYS[1] stream  KEYS[2] purge flag  KEYS[3..] status hashes
-- ARGV[1] group  ARGV[2] last stream entry id when the purge started ('0-0' = empty)  ARGV[3] purge flag expiry ms  ARGV[4] this purge's token  ARGV[5] 'start' | ''
-- Returns the number of payments deleted, or the error PURGELOST (nothing deleted) when the
--   flag is not this purge's, or with 'start' the error PURGERUNNING when another holds it.
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
if ARGV[5] == 'start' then
  if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[3]) then
    return redis.error_reply('PURGERUNNING another purge holds the purge flag')
  end
  return 0
end
if redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return redis.error_reply('PURGELOST the purge flag expired or another purge holds it')
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
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
