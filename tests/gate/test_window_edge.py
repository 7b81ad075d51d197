"""The minute is 60 seconds: the window holds exactly the last 60 one-second buckets of Redis time.

Buckets are planted at the window's very edge (59 and 60 seconds ago, by Redis's clock), so trimming
one second early or one second late both fail a test here. Each test starts early in a Redis second,
so the second does not turn between planting the buckets and the request.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from httpx import AsyncClient

from tests.support.factories import key_headers, make_account, set_plan

RPM = 3


async def early_in_a_second(raw: aioredis.Redis) -> int:
    """Redis's current second, once at most 0.3 s of it have passed."""
    seconds, micros = await raw.time()
    if micros > 300_000:
        await asyncio.sleep((1_000_000 - micros) / 1_000_000 + 0.02)
        seconds, micros = await raw.time()
    return int(seconds)


async def plant(raw: aioredis.Redis, window: str, second: int, units: int) -> None:
    await raw.delete(window)
    await raw.hset(window, mapping={str(second): units, "n": units, "o": second})


async def test_a_unit_59_seconds_old_is_still_in_the_window(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    await set_plan(client, "free", requests_per_minute=RPM)
    account_id, key = await make_account(client)
    now = await early_in_a_second(raw_redis)
    await plant(raw_redis, f"{redis_prefix}w:{account_id}", now - 59, RPM)
    denied = await client.get("/v1/products", headers=key_headers(key))
    assert denied.status_code == 429, denied.text
    assert denied.headers["retry-after"] == "1"  # it leaves at (now - 59) + 60
    assert denied.headers["x-ratelimit-reset"] == str(now + 1)


async def test_a_unit_60_seconds_old_has_left_the_window(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    await set_plan(client, "free", requests_per_minute=RPM)
    account_id, key = await make_account(client)
    window = f"{redis_prefix}w:{account_id}"
    now = await early_in_a_second(raw_redis)
    await plant(raw_redis, window, now - 60, RPM)
    admitted = await client.get("/v1/products", headers=key_headers(key))
    assert admitted.status_code == 200, admitted.text
    assert admitted.headers["x-ratelimit-remaining"] == str(RPM - 1)
    assert str(now - 60) not in await raw_redis.hgetall(window)


async def test_retry_after_is_at_most_60_and_agrees_with_the_reset(
    client: AsyncClient, raw_redis: aioredis.Redis
) -> None:
    await set_plan(client, "free", requests_per_minute=RPM)
    _, key = await make_account(client)
    now = await early_in_a_second(raw_redis)
    for _ in range(RPM):
        assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    denied = await client.get("/v1/products", headers=key_headers(key))
    assert denied.status_code == 429
    retry, reset = int(denied.headers["retry-after"]), int(denied.headers["x-ratelimit-reset"])
    assert retry == 60 and reset == now + 60
    assert denied.json()["retry_after"] == 60
