"""Self-test of `tests.support.upstash_bridge`: the real upstash-redis SDK against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Literal
from uuid import uuid4

import httpx
import pytest
import redis
from upstash_redis.asyncio import Redis
from upstash_redis.errors import UpstashError

from tests.support.settings import TEST_REDIS_URL
from tests.support.upstash_bridge import UpstashBridge

REDIS_URL = TEST_REDIS_URL
TOKEN = "test-token"


@pytest.fixture(scope="module")
def bridge() -> Iterator[UpstashBridge]:
    with UpstashBridge(REDIS_URL, TOKEN) as running:
        yield running


@pytest.fixture
def prefix(bridge: UpstashBridge) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted afterwards (never FLUSHDB)."""
    bridge.delay_seconds = 0.0
    value = f"bridgetest:{uuid4().hex}:"
    yield value
    bridge.delay_seconds = 0.0
    with redis.Redis.from_url(REDIS_URL) as direct:
        keys = list(direct.scan_iter(match=f"{value}*"))
        if keys:
            direct.delete(*keys)


def sdk(
    bridge: UpstashBridge, token: str = TOKEN, rest_encoding: Literal["base64"] | None = "base64"
) -> Redis:
    return Redis(
        url=bridge.url,
        token=token,
        rest_encoding=rest_encoding,
        rest_retries=0,
        allow_telemetry=False,
    )


@pytest.mark.asyncio
async def test_set_get_unicode_round_trip(bridge: UpstashBridge, prefix: str) -> None:
    value = "héllo wörld ✓ 日本語 🚀"
    async with sdk(bridge) as r:
        assert await r.set(f"{prefix}s", value) is True
        assert await r.get(f"{prefix}s") == value
        assert await r.get(f"{prefix}missing") is None
    async with sdk(bridge, rest_encoding=None) as plain:  # no Upstash-Encoding header
        assert await plain.get(f"{prefix}s") == value


@pytest.mark.asyncio
async def test_incrby_returns_int(bridge: UpstashBridge, prefix: str) -> None:
    async with sdk(bridge) as r:
        assert await r.incrby(f"{prefix}n", 5) == 5
        result = await r.incrby(f"{prefix}n", 37)
        assert result == 42 and type(result) is int


@pytest.mark.asyncio
async def test_hset_hgetall(bridge: UpstashBridge, prefix: str) -> None:
    async with sdk(bridge) as r:
        assert await r.hset(f"{prefix}h", values={"a": "1", "b": "two", "ü": "ß"}) == 3
        assert await r.hgetall(f"{prefix}h") == {"a": "1", "b": "two", "ü": "ß"}


@pytest.mark.asyncio
async def test_eval_returns_array_of_ints(bridge: UpstashBridge, prefix: str) -> None:
    script = "redis.call('SET', KEYS[1], ARGV[1]); return {1, tonumber(ARGV[1]), -3}"
    async with sdk(bridge) as r:
        assert await r.eval(script, keys=[f"{prefix}e"], args=["7"]) == [1, 7, -3]
        assert await r.get(f"{prefix}e") == "7"


@pytest.mark.asyncio
async def test_evalsha_unknown_sha_raises_noscript(bridge: UpstashBridge) -> None:
    async with sdk(bridge) as r:
        with pytest.raises(UpstashError) as info:
            await r.evalsha("0" * 40, keys=[], args=[])
    assert str(info.value).startswith("NOSCRIPT"), str(info.value)


@pytest.mark.asyncio
async def test_other_errors_keep_their_prefix(bridge: UpstashBridge, prefix: str) -> None:
    async with sdk(bridge) as r:
        await r.set(f"{prefix}str", "x")
        with pytest.raises(UpstashError, match=r"^WRONGTYPE "):
            await r.hgetall(f"{prefix}str")
        with pytest.raises(UpstashError, match=r"^ERR "):
            await r.execute(["NOSUCHCOMMAND", "x"])


@pytest.mark.asyncio
async def test_script_load_then_evalsha(bridge: UpstashBridge, prefix: str) -> None:
    script = f"-- {prefix}\nreturn {{KEYS[1], ARGV[1], 12}}"
    async with sdk(bridge) as r:
        sha = await r.script_load(script)
        assert isinstance(sha, str) and len(sha) == 40
        assert await r.evalsha(sha, keys=[f"{prefix}k"], args=["v"]) == [f"{prefix}k", "v", 12]


@pytest.mark.asyncio
async def test_pipeline(bridge: UpstashBridge, prefix: str) -> None:
    async with sdk(bridge) as r:
        bridge.reset_counters()
        pipe = r.pipeline()
        pipe.set(f"{prefix}p", "1")
        pipe.incr(f"{prefix}p")
        pipe.get(f"{prefix}p")
        assert await pipe.exec() == [True, 2, "2"]
        assert (bridge.http_requests, bridge.commands) == (1, 3)


@pytest.mark.asyncio
async def test_multi_exec(bridge: UpstashBridge, prefix: str) -> None:
    async with sdk(bridge) as r:
        tx = r.multi()
        tx.set(f"{prefix}m", "10")
        tx.incrby(f"{prefix}m", 5)
        tx.get(f"{prefix}m")
        assert await tx.exec() == [True, 15, "15"]

        tx = r.multi()  # a runtime error inside the transaction is reported for that command
        tx.hset(f"{prefix}m", values={"a": "b"})
        with pytest.raises(UpstashError, match=r"^WRONGTYPE "):
            await tx.exec()


def test_multi_exec_runs_in_a_transaction(bridge: UpstashBridge, prefix: str) -> None:
    # A command rejected while queueing aborts the whole transaction: nothing is written.
    body = [["SET", f"{prefix}t", "1"], ["NOSUCHCOMMAND"]]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    reply = httpx.post(f"{bridge.url}/multi-exec", json=body, headers=headers).json()
    assert reply[0]["error"].startswith("EXECABORT"), reply
    assert reply[1]["error"].startswith("ERR unknown command"), reply
    with redis.Redis.from_url(REDIS_URL) as direct:
        assert direct.exists(f"{prefix}t") == 0


def test_raw_protocol(bridge: UpstashBridge, prefix: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Upstash-Encoding": "base64"}
    reply = httpx.post(bridge.url, json=["SET", f"{prefix}r", "v"], headers=headers)
    assert (reply.status_code, reply.json()) == (200, {"result": "OK"})
    reply = httpx.post(bridge.url, json=["GET", f"{prefix}r"], headers=headers)
    assert reply.json() == {"result": "dg=="}
    reply = httpx.post(bridge.url, json=["EVALSHA", "0" * 40, 0], headers=headers)
    assert reply.status_code == 400
    assert json.loads(reply.content)["error"].startswith("NOSCRIPT No matching script")


@pytest.mark.asyncio
async def test_wrong_token_raises(bridge: UpstashBridge) -> None:
    async with sdk(bridge, token="wrong-token") as r:
        with pytest.raises(UpstashError, match="Unauthorized"):
            await r.get("bridgetest:any")
    reply = httpx.post(bridge.url, json=["PING"])
    assert (reply.status_code, reply.json()) == (401, {"error": "Unauthorized"})


@pytest.mark.asyncio
async def test_delay_exceeds_timeout(bridge: UpstashBridge, prefix: str) -> None:
    async with sdk(bridge) as r:
        bridge.delay_seconds = 5.0
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await r.set(f"{prefix}late", "1")
        assert time.monotonic() - started < 1.0
        bridge.delay_seconds = 0.0
        assert await r.ping() == "PONG"  # the client still works once the delay is gone
    await asyncio.sleep(0.2)  # the abandoned request was dropped, not executed later
    with redis.Redis.from_url(REDIS_URL) as direct:
        assert direct.exists(f"{prefix}late") == 0
