"""The Lua scripts of the usage roll-up and the usage view (called by SHA, source as fallback)."""

from __future__ import annotations

from app.redis.port import Script

# Snapshot up to ARGV[1] dirty usage hashes: {member, score, {field, value, ...}} each.
ROLLUP_SNAPSHOT = Script(
    """
local out = {}
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #members, 2 do
  out[#out + 1] = {members[i], members[i + 1], redis.call('HGETALL', members[i])}
end
return out
"""
)

# After the snapshot is durable in Postgres: clear each dirty mark unless it was touched since.
ROLLUP_ACK = Script(
    """
local cleared = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    cleared = cleared + 1
  end
end
return cleared
"""
)

# A hash as a flat [field, value, ...] array, the same shape on every adapter and protocol.
HGETALL = Script("return redis.call('HGETALL', KEYS[1])")
