#!lua flags=allow-oom
-- The purge's last step, atomic: wipes the summary, trims both streams up to where the purge
-- started (entries and dead letters written since stay) and clears the purge flag, so the next
-- record lands in the summary this leaves. Only for the purge that holds the flag (ARGV[3], its
-- token): a flag that expired or that another purge took means records may have run since this
-- purge last held it, and their shares must stay: the call deletes nothing and fails. It only
-- deletes, so it runs at a full memory too (a MULTI would be refused there).
-- KEYS[1] purge flag  KEYS[2] payment stream  KEYS[3] dead-letter stream  KEYS[4..] summary keys
-- ARGV[1] the payment stream's least id kept (XTRIM MINID)  ARGV[2] the dead-letter stream's least id kept  ARGV[3] this purge's token
-- Returns 1, or the error PURGELOST (nothing deleted) when the flag is not this purge's.
if redis.call('GET', KEYS[1]) ~= ARGV[3] then
  return redis.error_reply('PURGELOST the purge flag expired or another purge holds it')
end
for i = 4, #KEYS do
  redis.call('UNLINK', KEYS[i])
end
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
