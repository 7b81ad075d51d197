"""The Redis port behaves the same on all three adapters: scripts by SHA with a source fallback,
replies as str/int, and a bounded wait."""

from __future__ import annotations

import asyncio
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


# A script that keeps Redis busy for ~`ARGV[1]` ms (Redis 7 scripts may call TIME in a loop).
SLOW = Script(
    """
local function ms() local t = redis.call('TIME'); return t[1] * 1000 + t[2] / 1000 end
local start = ms()
while ms() - start < tonumber(ARGV[1]) do end
return ARGV[2]
"""
)


async def test_plain_replies_carry_the_same_values_on_every_adapter(
    port: RedisPort, redis_prefix: str
) -> None:
    # SET says OK (or nil) in each client's way; nil is None, numbers are int, strings str.
    key = f"{redis_prefix}shape"
    assert await port.execute("HSET", key, "a", 1, "b", "é") == 2
    assert await port.execute("HMGET", key, "a", "b", "c") == ["1", "é", None]
    assert await port.execute("SET", f"{key}:s", "1", "NX", "EX", 5)  # "OK" / True
    assert not await port.execute("SET", f"{key}:s", "1", "NX", "EX", 5)  # None / False
    assert await port.execute("GET", f"{key}:missing") is None
    assert await port.execute("HINCRBY", key, "a", 41) == 42
    assert await port.execute("DEL", key, f"{key}:s") == 2


async def test_a_reply_that_came_too_late_never_answers_the_next_command(
    redis_prefix: str,
) -> None:
    # The first call gives up after 50 ms while Redis is still busy; its reply ("late") arrives
    # afterwards, after the next call was sent (Redis answers in order). Whatever connection the
    # next call uses must answer that call's own command.
    port = build_redis(make_settings("redis", redis_prefix, REDIS_TIMEOUT_MS=50))
    port.cooldown = 0.0
    await port.run_script(SLOW, [], [0, "warm"])  # cached on the server, connection open
    with pytest.raises(RedisUnavailable):
        await port.run_script(SLOW, [], [250, "late"])
    port.timeout = 2.0  # sent while the slow script still runs: its reply comes after "late"
    assert await port.execute("ECHO", "mine") == "mine"
    assert await port.run_script(SLOW, [], [0, "own"]) == "own"
    await port.close()


async def test_a_cancelled_call_leaves_no_reply_behind(redis_prefix: str) -> None:
    port = build_redis(make_settings("redis", redis_prefix))
    await port.run_script(SLOW, [], [0, "warm"])
    task = asyncio.ensure_future(port.run_script(SLOW, [], [200, "cancelled"]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await port.execute("ECHO", "mine") == "mine"
    await port.close()


async def test_concurrent_calls_each_get_their_own_reply(redis_prefix: str) -> None:
    port = build_redis(make_settings("redis", redis_prefix))
    words = [f"w{i}" for i in range(40)]
    replies = await asyncio.gather(*(port.run_script(SLOW, [], [0, w]) for w in words))
    assert replies == words
    await port.close()
