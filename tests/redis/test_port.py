"""The Redis port behaves the same on all three adapters: scripts by SHA with a source fallback,
replies as str/int, and a bounded wait."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from app.redis.adapters import build_redis
from app.redis.port import RedisPort, RedisUnavailable, Script
from tests.conftest import make_settings
from tests.support.upstash_bridge import UpstashBridge


@pytest.fixture(params=["redis", "upstash", "embedded"])
async def port(
    request: pytest.FixtureRequest, bridge: UpstashBridge, redis_prefix: str, raw_redis: object
) -> AsyncIterator[RedisPort]:
    adapter = build_redis(make_settings(str(request.param), redis_prefix, bridge.url))
    yield adapter
    await adapter.close()


async def test_script_runs_by_sha_after_one_fallback(port: RedisPort, redis_prefix: str) -> None:
    # A script no server has seen: the first call gets NOSCRIPT and sends the source once.
    script = Script(
        f"-- {uuid.uuid4().hex}\n"
        "return {redis.call('INCRBY', KEYS[1], ARGV[1]), ARGV[2], redis.call('TYPE', KEYS[1]).ok}"
    )
    key = f"{redis_prefix}counter"
    assert await port.run_script(script, [key], [2, "héllo"]) == [2, "héllo", "string"]
    assert port.commands == 2  # EVALSHA (NOSCRIPT) + EVAL
    assert await port.run_script(script, [key], [3, "x"]) == [5, "x", "string"]
    assert port.commands == 3  # EVALSHA only
    assert await port.execute("DEL", key) == 1


async def test_script_errors_are_not_mistaken_for_a_missing_script(port: RedisPort) -> None:
    with pytest.raises(RedisUnavailable):
        await port.run_script(Script("return redis.call('NOPE')"), [], [])


async def test_a_dead_server_fails_fast_and_short_circuits(redis_prefix: str) -> None:
    port = build_redis(
        make_settings(
            "redis", redis_prefix, REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT_MS=200
        )
    )
    with pytest.raises(RedisUnavailable):
        await port.ping()
    sent = port.commands
    with pytest.raises(RedisUnavailable):
        await port.ping()  # within the cooldown: not even attempted
    assert port.commands == sent
    await port.close()
