"""The Lua scripts the gate and the usage roll-up run, each called by SHA with a source fallback."""

from __future__ import annotations

from pathlib import Path

from app.redis.port import Script

# What the gate script answers first (the same numbers are named at the top of gate.lua).
ADMIT, STALE, SUSPENDED, FEATURE, PAYMENT, QUOTA, RATE = range(7)

# The gate: freshness + verdict + quota + minute window + usage counters, atomically.
GATE = Script((Path(__file__).with_name("gate.lua")).read_text())

# Give back what an admitted request counted when its handler did not succeed (only 2xx count).
# The per-minute window keeps the request: it did load the service.
REFUND = Script(
    """
if redis.call('HGET', KEYS[1], 'e') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', -tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], ARGV[2], -tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), KEYS[1])
return 1
"""
)

# Publish a policy version (account or plan) written to Postgres; never move it backwards.
SET_VERSION = Script(
    """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
)

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
