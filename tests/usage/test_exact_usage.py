"""Exact usage: the roll-up neither loses nor double-counts a call, whatever happens between its
snapshot of Redis and its acknowledgement, and whatever the instances' clocks say.

The roll-up is driven through the cron endpoint; events are injected between its snapshot and
its write, and between its write and its acknowledgement, by wrapping `write_snapshot`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.catalog import repository as catalog_repository
from app.models import utcnow
from app.usage import repository as usage_repo
from app.usage.period import month_bounds
from tests.conftest import CRON_SECRET, database_url
from tests.support.factories import key_headers, make_account, make_products, set_plan

CRON = {"Authorization": f"Bearer {CRON_SECRET}"}
Event = Callable[[], Awaitable[None]]


async def postgres_total(account_id: str) -> int:
    conn = await asyncpg.connect(database_url())
    total = await conn.fetchval(
        "SELECT coalesce(sum(count), 0) FROM usage_rollups WHERE account_id = $1", account_id
    )
    await conn.close()
    return int(total)


async def redis_total(raw: aioredis.Redis, prefix: str, account_id: str) -> int:
    keys = [k async for k in raw.scan_iter(match=f"{prefix}u:{account_id}:*")]
    return sum([int(await raw.hget(k, "n") or 0) for k in keys])


class World:
    """One account, and the events a test interleaves with the roll-up."""

    def __init__(
        self, client: AsyncClient, key: str, sku: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.client, self.key, self.sku, self.monkeypatch = client, key, sku, monkeypatch
        self.entered = asyncio.Event()
        self.release_paused = asyncio.Event()
        self.paused: asyncio.Task[Any] | None = None
        original = catalog_repository.get  # what a product read queries on a miss

        async def get(session: Any, sku: str) -> Any:
            if sku == "PAUSE-THEN-FAIL":  # admitted, then fails once released: a refund
                self.entered.set()
                await self.release_paused.wait()
            return await original(session, sku)

        monkeypatch.setattr(catalog_repository, "get", get)

    async def admit(self) -> None:
        response = await self.client.get(f"/v1/products/{self.sku}", headers=key_headers(self.key))
        assert response.status_code == 200, response.text

    async def admit_with_clock_behind(self) -> None:
        real = utcnow
        self.monkeypatch.setattr("app.gate.service.utcnow", lambda: real() - timedelta(minutes=10))
        try:
            await self.admit()
        finally:
            self.monkeypatch.setattr("app.gate.service.utcnow", real)

    async def fail(self) -> None:
        response = await self.client.get("/v1/products/NOPE-1", headers=key_headers(self.key))
        assert response.status_code == 404

    async def start_paused(self) -> None:
        path = "/v1/products/PAUSE-THEN-FAIL"
        self.paused = asyncio.ensure_future(self.client.get(path, headers=key_headers(self.key)))
        await asyncio.wait_for(self.entered.wait(), 10)

    async def refund_paused(self) -> None:
        assert self.paused is not None
        self.release_paused.set()
        assert (await self.paused).status_code == 404


SCENARIOS = {
    # name: (before the roll-up, between snapshot and write, between write and ack, expected)
    "refund-before-write": (["start_paused"], ["refund_paused"], [], 0),
    "refund-before-ack": (["start_paused"], [], ["refund_paused"], 0),
    "admit-then-refund-rewinds": (["start_paused"], ["admit"], ["refund_paused"], 1),
    "refund-then-admit": (["start_paused"], ["refund_paused"], ["admit"], 1),
    "admit-before-ack": (["admit"], [], ["admit"], 2),
    "fail-during": (["admit"], ["fail"], ["fail"], 1),
    "admit-on-a-clock-behind": (["admit"], [], ["admit_with_clock_behind"], 2),
    "snapshot-of-nothing-then-admit": ([], ["admit"], ["admit"], 2),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_rollup_interleavings_keep_postgres_equal_to_redis(
    app: FastAPI,
    client: AsyncClient,
    raw_redis: aioredis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
) -> None:
    before, mid_write, mid_ack, expected = SCENARIOS[scenario]
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client, plan="pro")
    world = World(client, key, sku, monkeypatch)
    if not before:  # something dirty for the roll-up to snapshot: another account's call
        _, other = await make_account(client)
        response = await client.get(f"/v1/products/{sku}", headers=key_headers(other))
        assert response.status_code == 200
    for name in before:
        await getattr(world, name)()

    original = usage_repo.write_snapshot
    hooked = False

    async def write_snapshot(session: Any, rows: Any) -> None:
        nonlocal hooked
        if hooked:
            await original(session, rows)
            return
        hooked = True
        for name in mid_write:
            await getattr(world, name)()
        await original(session, rows)
        for name in mid_ack:
            await getattr(world, name)()

    monkeypatch.setattr(usage_repo, "write_snapshot", write_snapshot)
    assert (await client.get("/v1/internal/cron/rollup-usage", headers=CRON)).status_code == 200
    assert hooked
    final = await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert final.status_code == 200
    assert await redis_total(raw_redis, redis_prefix, account_id) == expected
    assert await postgres_total(account_id) == expected
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == expected


async def test_rerunning_the_rollup_after_a_refund_rewrites_the_lower_count(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer snapshot (higher change counter) overwrites an older, larger one."""
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    world = World(client, key, sku, monkeypatch)
    await world.admit()
    await world.start_paused()
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert await postgres_total(account_id) == 2
    await world.refund_paused()
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert await postgres_total(account_id) == 1


async def test_two_instances_with_skewed_clocks_enforce_one_window(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httpx import ASGITransport

    from app.main import create_app

    await set_plan(client, "free", requests_per_minute=3)
    _, key = await make_account(client)
    other_app = create_app(app.state.services.settings)
    real = utcnow
    statuses = []
    async with AsyncClient(transport=ASGITransport(other_app), base_url="http://b") as other:
        for i in range(6):
            ahead = i % 2 == 1  # every other call goes to an instance whose clock is 5 min ahead
            skewed = (lambda: real() + timedelta(minutes=5)) if ahead else real
            monkeypatch.setattr("app.gate.service.utcnow", skewed)
            target = other if ahead else client
            response = await target.get("/v1/products", headers=key_headers(key))
            statuses.append(response.status_code)
    monkeypatch.setattr("app.gate.service.utcnow", real)
    await other_app.state.services.close()
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_the_period_comes_from_redis_not_the_instance_clock(
    client: AsyncClient,
    raw_redis: aioredis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account_id, key = await make_account(client)
    real = utcnow
    monkeypatch.setattr("app.gate.service.utcnow", lambda: real() - timedelta(days=40))
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 200
    redis_now = datetime.fromtimestamp(int((await raw_redis.time())[0]), UTC)
    start, end = month_bounds(redis_now)
    assert [k async for k in raw_redis.scan_iter(match=f"{redis_prefix}u:{account_id}:*")] == [
        f"{redis_prefix}u:{account_id}:{int(start.timestamp())}"
    ]
    assert response.headers["x-quota-reset"] == str(int(end.timestamp()))
