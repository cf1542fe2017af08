#!lua flags=allow-oom
-- Compact the summary's per-payment detail of one processor: payments in `ev` whose
-- requestedAt lies in a whole UTC second older than the horizon move, in one step, into
-- one string per second of per-millisecond counts and cents. A query's partial edge
-- seconds stay exact to the millisecond (summary.lua reads both places; a payment is in
-- exactly one of them at any instant), and the detail of an old second costs one short
-- string of at most 1 000 entries instead of one sorted-set member per payment.
-- Sums are decimal strings added digit by digit: Lua numbers are doubles, cents are not.
-- A payment recorded late into a second whose detail was already dropped (below the
-- watermark of drop_detail.lua) leaves `ev` without a string: that second's millisecond
-- detail stays gone (its bucket counts it; a query with an edge in it is refused).
-- KEYS[1] events by requestedAt (ev)  KEYS[2] compacted detail (second -> 'off:count:cents ...')
-- KEYS[3] the first second whose detail is kept (drop_detail.lua; absent: all of it)
-- ARGV[1] horizon in ms  ARGV[2] most payments moved by this call
-- Returns the number of payments moved (below ARGV[2] once nothing older is left).
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    out[#out + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
  end
  return string.reverse(table.concat(out))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Only whole seconds that ended before now - horizon.
local cutoff = math.floor((now - tonumber(ARGV[1])) / 1000) * 1000
local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', cutoff),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
if #batch == 0 then
  return 0
end
local kept_from = tonumber(redis.call('GET', KEYS[3]) or '')
local seconds = {}
local members = {}
for i = 1, #batch, 2 do
  local member, ms = batch[i], tonumber(batch[i + 1])
  local cents = string.match(member, ':(%d+)$') or '0'
  local sec = math.floor(ms / 1000)
  if not kept_from or sec >= kept_from then
    local off = ms - sec * 1000
    local offs = seconds[sec]
    if not offs then
      offs = {}
      seconds[sec] = offs
    end
    local cell = offs[off]
    if cell then
      cell[1] = cell[1] + 1
      cell[2] = add(cell[2], cents)
    else
      offs[off] = {1, cents}
    end
  end
  members[#members + 1] = member
end
for sec, offs in pairs(seconds) do
  local field = string.format('%d', sec)
  -- A second compacted before (a batch ended inside it, or a payment recorded late).
  local old = redis.call('HGET', KEYS[2], field)
  if old then
    for off, n, c in string.gmatch(old, '(%d+):(%d+):(%d+)') do
      off = tonumber(off)
      local cell = offs[off]
      if cell then
        cell[1] = cell[1] + tonumber(n)
        cell[2] = add(cell[2], c)
      else
        offs[off] = {tonumber(n), c}
      end
    end
  end
  local order = {}
  for off in pairs(offs) do
    order[#order + 1] = off
  end
  table.sort(order)
  local parts = {}
  for _, off in ipairs(order) do
    parts[#parts + 1] = string.format('%d:%d:%s', off, offs[off][1], offs[off][2])
  end
  redis.call('HSET', KEYS[2], field, table.concat(parts, ' '))
end
-- unpack() has a small stack limit: remove in chunks.
for first = 1, #members, 1000 do
  redis.call('ZREM', KEYS[1], unpack(members, first, math.min(first + 999, #members)))
end
return #members
