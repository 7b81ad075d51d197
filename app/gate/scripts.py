"""The Lua scripts the gate runs, each called by SHA with a source fallback."""

from __future__ import annotations

from pathlib import Path

from app.redis.port import Script
from app.usage.period import CALENDAR_LUA

# What the gate script answers first (the same numbers are named at the top of gate.lua).
# LATE: the request id was already settled in Postgres by the degraded-mode reconciliation.
ADMIT, STALE, SUSPENDED, FEATURE, PAYMENT, QUOTA, RATE, LATE = range(8)

# The gate: freshness + period + verdict + quota + minute window + usage counters, atomically.
GATE = Script(CALENDAR_LUA + (Path(__file__).with_name("gate.lua")).read_text())

# Give back what an admitted request counted when its handler did not succeed (only 2xx count).
# The per-minute window keeps the request: it did load the service. Bumping the change counter
# `c` keeps the hash dirty even if a roll-up snapshot taken before this refund is acknowledged.
# The admission bucket decides: while it is open the refund takes the call out of every counter;
# once the roll-up has settled (billed) the bucket it is gone, and the refund changes nothing, so
# the call stays counted everywhere, /v1/usage, PostgreSQL and Stripe alike (returns 2). The
# settle delay exceeds the longest request, so that happens only to a request that outlived it.
# A refund whose answer the instance did not get is recorded as a void by request id, which the
# settlement resolves by asking the ids set (usage/scripts.py RESOLVE_DEGRADED): so whatever this
# script decides, it first takes the request id out of the set (the gate's count is no longer
# Redis's to give back), and it does nothing once the settlement has tombstoned the id (`x:<id>`:
# the void already took the call back in PostgreSQL; returns 3).
# KEYS: 1 usage hash, 2 dirty (zset), 3 top board (zset), 4 the account's request ids (zset)
# ARGV: 1 epoch, 2 usage field, 3 cost, 4 account id, 5 admission bucket field, 6 request id
REFUND = Script(
    """
if redis.call('ZSCORE', KEYS[4], 'x:' .. ARGV[6]) then return 3 end
redis.call('ZREM', KEYS[4], ARGV[6])
if redis.call('HGET', KEYS[1], 'e') ~= ARGV[1] then return 0 end
if not redis.call('HGET', KEYS[1], ARGV[5]) then return 2 end
local cost = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], 'n', -cost)
redis.call('HINCRBY', KEYS[1], ARGV[2], -cost)
redis.call('HINCRBY', KEYS[1], ARGV[5], -cost)
redis.call('HINCRBY', KEYS[1], 'c', 1)
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), KEYS[1])
redis.call('ZINCRBY', KEYS[3], -cost, ARGV[4])
return 1
"""
)
