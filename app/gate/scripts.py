"""The Lua scripts the gate runs, each called by SHA with a source fallback."""

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
