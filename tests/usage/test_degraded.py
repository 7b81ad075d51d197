"""Requests served while Redis was slow or away (fail-open) are counted exactly once.

A gate call can run in Redis and still answer after REDIS_TIMEOUT_MS: the instance serves the
request in degraded mode and keeps it in Postgres by request id; the roll-up then asks Redis which
ids it counted, so each request ends up counted in exactly one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event

from app.gate.scripts import GATE
from app.main import create_app
from tests.conftest import CRON_SECRET, UPSTASH_TOKEN, database_url, make_settings
from tests.support.factories import key_headers, make_account, make_products
from tests.support.upstash_bridge import UpstashBridge

CRON = {"Authorization": f"Bearer {CRON_SECRET}"}
TIMEOUT = {"RATE_LIMIT_FAILURE_MODE": "open", "REDIS_TIMEOUT_MS": 200}


async def _warm_then_slow(slow: UpstashBridge, app: FastAPI, sku: str, key: str) -> None:
    """One normal call (the instance caches the key), then Upstash answers 0.6 s late."""
    assert (await _get(app, f"/v1/products/{sku}", key))[0] == 200
    slow.reply_delay_seconds = 0.6


async def _redis_used(raw: aioredis.Redis, prefix: str, account_id: str) -> int:
    keys = [k async for k in raw.scan_iter(match=f"{prefix}u:{account_id}:*")]
    return sum([int(await raw.hget(k, "n") or 0) for k in keys])


async def _pg(account_id: str) -> tuple[int, int]:
    """(units in usage_rollups, units still unsettled in degraded_calls)."""
    conn = await asyncpg.connect(database_url())
    rolled = await conn.fetchval(
        "SELECT coalesce(sum(count), 0) FROM usage_rollups WHERE account_id = $1", account_id
    )
    pending = await conn.fetchval(
        "SELECT coalesce(sum(units), 0) FROM degraded_calls WHERE account_id = $1", account_id
    )
    await conn.close()
    return int(rolled), int(pending)


@pytest.fixture
async def slow_app(
    redis_prefix: str, raw_redis: aioredis.Redis
) -> AsyncIterator[tuple[UpstashBridge, FastAPI]]:
    """An instance on an Upstash that will run every command at once but answer late (once a
    test sets `reply_delay_seconds`, after warming the instance's key cache)."""
    await raw_redis.script_load(GATE.source)  # EVALSHA runs at once (no NOSCRIPT round trip)
    with UpstashBridge(token=UPSTASH_TOKEN) as slow:
        app = create_app(make_settings("upstash", redis_prefix, slow.url, **TIMEOUT))
        yield slow, app
        await app.state.services.close()


async def _get(app: FastAPI, path: str, key: str) -> tuple[int, dict[str, str]]:
    async with AsyncClient(transport=ASGITransport(app), base_url="http://slow") as client:
        response = await client.get(path, headers=key_headers(key))
    return response.status_code, dict(response.headers)


async def test_a_late_answer_is_counted_once(
    client: AsyncClient,
    slow_app: tuple[UpstashBridge, FastAPI],
    raw_redis: aioredis.Redis,
    redis_prefix: str,
) -> None:
    slow, app = slow_app
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    await _warm_then_slow(slow, app, sku, key)
    status, headers = await _get(app, f"/v1/products/{sku}", key)
    assert status == 200 and headers["x-ratelimit-degraded"] == "1"
    assert await _redis_used(raw_redis, redis_prefix, account_id) == 2  # it did run in Redis
    assert await _pg(account_id) == (0, 1)  # and is kept by request id, not yet settled
    rollup = (await client.get("/v1/internal/cron/rollup-usage", headers=CRON)).json()
    assert rollup["settled"] == 1
    # Redis counted it: the degraded copy is dropped, Redis's count is rolled up
    assert await _pg(account_id) == (2, 0)
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 2


async def test_a_call_that_never_reached_redis_is_counted_in_postgres(
    client: AsyncClient, redis_prefix: str
) -> None:
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    app = create_app(make_settings("redis", redis_prefix, REDIS_URL="redis://127.0.0.1:1/0"))
    status, _ = await _get(app, f"/v1/products/{sku}", key)
    await app.state.services.close()
    assert status == 200
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)  # settling is idempotent
    assert await _pg(account_id) == (1, 0)
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 1 and usage["by_endpoint"] == {"products.get": 1}


async def test_a_gate_call_arriving_after_the_settlement_counts_nothing(
    client: AsyncClient, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    """The gate call is stuck in the network, settled as 'not counted', then reaches Redis."""
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    await raw_redis.script_load(GATE.source)
    with UpstashBridge(token=UPSTASH_TOKEN, execute_after_disconnect=True) as stuck:
        app = create_app(make_settings("upstash", redis_prefix, stuck.url, **TIMEOUT))
        assert (await _get(app, f"/v1/products/{sku}", key))[0] == 200  # warm: key cached
        stuck.delay_seconds = 2.0  # from now on, commands reach Redis ~2 s after being sent
        status, headers = await _get(app, f"/v1/products/{sku}", key)
        assert status == 200 and headers["x-ratelimit-degraded"] == "1"
        before = stuck.commands  # the gate call is on its way (counted when Redis runs it)
        await client.get("/v1/internal/cron/rollup-usage", headers=CRON)  # settles: not counted
        assert await _pg(account_id) == (2, 0)  # 1 rolled up from Redis, 1 settled into Postgres
        assert stuck.commands == before, "the settlement must come first (a slow machine?)"
        for _ in range(200):  # the stuck gate call reaches Redis now
            if stuck.commands > before:
                break
            await asyncio.sleep(0.05)
        assert stuck.commands > before
        await app.state.services.close()
    assert await _redis_used(raw_redis, redis_prefix, account_id) == 1  # it counted nothing
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert await _pg(account_id) == (2, 0)
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 2


async def test_degraded_writes_stay_under_the_connection_cap(
    client: AsyncClient, redis_prefix: str
) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client, plan="pro")
    settings = make_settings(
        "redis", redis_prefix, REDIS_URL="redis://127.0.0.1:1/0", DB_MAX_CONNECTIONS=2
    )
    app = create_app(settings)
    engine = app.state.services.db.engine.sync_engine
    open_now = peak = 0

    def opened(*_: object) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)

    def closed(*_: object) -> None:
        nonlocal open_now
        open_now -= 1

    event.listen(engine, "checkout", opened)
    event.listen(engine, "checkin", closed)
    async with AsyncClient(transport=ASGITransport(app), base_url="http://d") as degraded:
        responses = await asyncio.gather(
            *(degraded.get(f"/v1/products/{sku}", headers=key_headers(key)) for _ in range(30))
        )
    await app.state.services.close()
    assert {r.status_code for r in responses} == {200}
    assert peak <= 2


async def test_the_instance_settles_its_degraded_calls_once_redis_answers(
    client: AsyncClient, slow_app: tuple[UpstashBridge, FastAPI]
) -> None:
    slow, app = slow_app
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    await _warm_then_slow(slow, app, sku, key)
    status, headers = await _get(app, f"/v1/products/{sku}", key)
    assert status == 200 and headers["x-ratelimit-degraded"] == "1"
    slow.reply_delay_seconds = 0  # Upstash is healthy again
    await asyncio.sleep(1.1)  # past the port's short-circuit after a failure
    status, headers = await _get(app, f"/v1/products/{sku}", key)
    assert status == 200 and "x-ratelimit-degraded" not in headers
    for _ in range(200):  # settled in the background, without waiting for the cron
        if (await _pg(account_id))[1] == 0:
            break
        await asyncio.sleep(0.05)
    assert await _pg(account_id) == (0, 0)  # the late call was counted in Redis: no copy kept
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert await _pg(account_id) == (3, 0)


async def test_the_rollup_with_redis_away_is_a_clear_503_and_changes_nothing(
    client: AsyncClient, redis_prefix: str
) -> None:
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    app = create_app(make_settings("redis", redis_prefix, REDIS_URL="redis://127.0.0.1:1/0"))
    async with AsyncClient(transport=ASGITransport(app), base_url="http://down") as down:
        assert (await down.get(f"/v1/products/{sku}", headers=key_headers(key))).status_code == 200
        response = await down.get("/v1/internal/cron/rollup-usage", headers=CRON)
    await app.state.services.close()
    assert response.status_code == 503 and response.json()["error"] == "redis_unavailable"
    assert await _pg(account_id) == (0, 1)  # still pending, settled by a later run
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert await _pg(account_id) == (1, 0)
