"""The Lua scripts of the usage roll-up and the usage view (called by SHA, source as fallback)."""

from __future__ import annotations

from app.redis.port import Script
from app.usage.period import CALENDAR_LUA

# Settle and snapshot dirty usage hashes, up to ARGV[1] of them from rank ARGV[2] of the dirty
# set (oldest change first). Every admission is counted in its `<day>|<endpoint>` counter and in
# its admission bucket `b:<start>` (ARGV[3] seconds wide), and a refund takes it out of both, so
# a hash's settled units are its counters minus its open buckets. Settling closes every bucket
# that ended more than ARGV[4] seconds ago by Redis's clock: it is deleted, and from then on no
# refund can touch its units (REFUND finds no bucket), so the settled total only grows. Closing
# is a change: it bumps `c`. A hash that has expired is snapshotted empty.
# Returns {member, score, {field, value, ...}} each.
ROLLUP_SNAPSHOT = Script(
    """
local now_s = tonumber(redis.call('TIME')[1])
local width, after = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local first = tonumber(ARGV[2])
local members = redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #members, 2 do
  local key = members[i]
  local flat = redis.call('HGETALL', key)
  local closed = false
  for j = 1, #flat, 2 do
    local name = flat[j]
    if string.sub(name, 1, 2) == 'b:' and tonumber(string.sub(name, 3)) + width + after <= now_s
    then
      redis.call('HDEL', key, name)
      closed = true
    end
  end
  if closed then
    redis.call('HINCRBY', key, 'c', 1)
    flat = redis.call('HGETALL', key)
  end
  out[#out + 1] = {key, members[i + 1], flat}
end
return out
"""
)

# After the snapshot is durable in Postgres: clear each dirty mark whose hash did not change
# since. Every change (an admission, a refund, a fold) bumps the hash's counter `c`, so
# "unchanged" is "same `c`": no clock is involved. A hash that had expired (no `c`) is snapshotted
# as "". The caller leaves out hashes that still hold open buckets: they stay dirty until settled.
# KEYS: 1 dirty (zset); ARGV: member, c, member, c, ...
ROLLUP_ACK = Script(
    """
local cleared = 0
for i = 1, #ARGV, 2 do
  local c = redis.call('HGET', ARGV[i], 'c') or ''
  if c == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    cleared = cleared + 1
  end
end
return cleared
"""
)

# Settle requests served while Redis was unreachable (fail-open), and refunds Redis did not
# confirm, by request id. For each (ids set, request id): 1 if the id is in the set (the gate
# script counted the call and no refund has run since), else 0; and a tombstone `x:<id>` either
# way, so that a gate call or a refund still in flight can never change the count afterwards.
# KEYS: the ids sets, one per request; ARGV: 1 tombstone lifetime (ms), then the request ids.
RESOLVE_DEGRADED = Script(
    """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local rid = ARGV[i + 1]
  out[i] = redis.call('ZSCORE', KEYS[i], rid) and 1 or 0
  redis.call('ZADD', KEYS[i], now_ms, 'x:' .. rid)
  if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return out
"""
)

# The live top-usage board of the current calendar month (Redis's clock), heaviest first.
# KEYS: none; ARGV: 1 top key prefix, 2 how many. Returns {month start s, {account, units, ...}}.
TOP_USAGE = Script(
    CALENDAR_LUA
    + """
local start = month_start(tonumber(redis.call('TIME')[1]))
local top = redis.call('ZREVRANGE', ARGV[1] .. start, 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
return {start, top}
"""
)

# A hash as a flat [field, value, ...] array, the same shape on every adapter and protocol.
HGETALL = Script("return redis.call('HGETALL', KEYS[1])")

# Several hashes at once (the founder's reconciliation): {{field, value, ...}, ...} in KEYS order.
HGETALL_MANY = Script(
    """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""
)
