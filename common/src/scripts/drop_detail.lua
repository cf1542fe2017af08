#!lua flags=allow-oom
-- Drop one processor's compacted millisecond detail (compact.lua's per-second strings) for
-- the seconds older than SUMMARY_DETAIL_RETENTION, and move the watermark that tells
-- Store::summary from which second on the detail is still kept. The per-second, minute,
-- hour and day buckets stay: a window whose edges are whole seconds stays exact at any age;
-- one with a millisecond edge in a dropped second is refused (422), never answered from
-- partial data. The seconds' tenths (record.lua) go with their detail. Bounded work per
-- call: at most ARGV[2] seconds are walked (HDEL of up to 21 fields each), days without
-- traffic are skipped through the days index.
-- KEYS[1] compacted detail (hash: second -> string)  KEYS[2] watermark (string: the first
-- second whose detail is kept)  KEYS[3] days index  KEYS[4] seconds not rolled up yet (older
-- revisions; their days may be missing from the days index)  KEYS[5] counts by bucket
-- KEYS[6] cents by bucket (their tenths of a second)
-- ARGV[1] SUMMARY_DETAIL_RETENTION in ms  ARGV[2] most seconds walked by this call
-- Returns the number of seconds walked (below ARGV[2] once the watermark reached the cutoff).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Seconds before `cutoff` lose their detail: only whole seconds, all older than retention.
local cutoff = math.floor((now - tonumber(ARGV[1])) / 1000)
local most = tonumber(ARGV[2])
local from = tonumber(redis.call('GET', KEYS[2]) or '')
if not from then
  -- First run: from the oldest second anything was recorded in; with nothing recorded, the
  -- watermark starts at the cutoff (nothing older exists to be asked for).
  from = cutoff
  local day = redis.call('ZRANGE', KEYS[3], 0, 0)
  if #day > 0 then
    from = math.min(from, tonumber(day[1]) * 86400)
  end
  local sec = redis.call('ZRANGE', KEYS[4], 0, 0)
  if #sec > 0 then
    from = math.min(from, tonumber(sec[1]))
  end
end
-- Legacy seconds' days may be unlisted: with any left, every second is walked.
local skip_days = redis.call('EXISTS', KEYS[4]) == 0
local walked = 0
while from < cutoff and walked < most do
  if skip_days then
    -- To the next day with traffic (none: the cutoff, and nothing is walked).
    local next_day = redis.call('ZRANGEBYSCORE', KEYS[3], math.floor(from / 86400), '+inf',
      'LIMIT', 0, 1)
    local next_start = #next_day > 0 and tonumber(next_day[1]) * 86400 or cutoff
    from = math.min(cutoff, math.max(from, next_start))
  end
  local to = math.min(cutoff, from + most - walked, (math.floor(from / 86400) + 1) * 86400)
  local fields = {}
  local tenths = {}
  for s = from, to - 1 do
    fields[#fields + 1] = string.format('%d', s)
    for t = s * 10, s * 10 + 9 do
      tenths[#tenths + 1] = string.format('t%d', t)
    end
  end
  -- unpack() has a small stack limit: delete in chunks.
  for first = 1, #fields, 1000 do
    redis.call('HDEL', KEYS[1], unpack(fields, first, math.min(first + 999, #fields)))
  end
  for first = 1, #tenths, 1000 do
    local chunk = {unpack(tenths, first, math.min(first + 999, #tenths))}
    redis.call('HDEL', KEYS[5], unpack(chunk))
    redis.call('HDEL', KEYS[6], unpack(chunk))
  end
  walked = walked + (to - from)
  from = to
end
redis.call('SET', KEYS[2], string.format('%d', from))
return walked
