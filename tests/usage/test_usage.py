"""Usage: counted in Redis, rolled up durably into Postgres, shown per endpoint and per day."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.models import utcnow
from tests.conftest import CRON_SECRET, database_url
from tests.support.factories import key_headers, make_account, make_products

CRON = {"Authorization": f"Bearer {CRON_SECRET}"}


async def _rolled(account_id: str) -> list[tuple[str, str, int]]:
    conn = await asyncpg.connect(database_url())
    rows = await conn.fetch(
        "SELECT endpoint, epoch, count FROM usage_rollups WHERE account_id = $1 ORDER BY endpoint",
        account_id,
    )
    await conn.close()
    return [(r["endpoint"], r["epoch"], r["count"]) for r in rows]


async def test_usage_breakdown(client: AsyncClient) -> None:
    skus = await make_products(client, 3)
    _, key = await make_account(client, plan="pro")
    for sku in skus:
        assert (
            await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        ).status_code == 200
    await client.get("/v1/products", headers=key_headers(key))
    await client.post("/v1/products/bulk", json={"skus": skus}, headers=key_headers(key))
    await client.get("/v1/products/NOT-THERE", headers=key_headers(key))  # 404: not counted
    await client.get("/v1/account", headers=key_headers(key))  # control plane: not counted
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 5
    assert usage["by_endpoint"] == {"products.bulk": 1, "products.get": 3, "products.list": 1}
    assert usage["quota"] == 50_000 and usage["remaining"] == 49_995
    assert usage["percent"] == 0.01 and usage["requests_per_minute"] == 120
    today = utcnow().date().isoformat()
    assert usage["daily"][-1] == {"date": today, "count": 5}
    assert usage["daily"][0]["date"] == usage["period_start"][:10]


async def test_cron_requires_the_secret(client: AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": CRON_SECRET}):
        response = await client.get("/v1/internal/cron/rollup-usage", headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    response = await client.get("/v1/internal/cron/nope", headers=CRON)
    assert response.status_code == 404


async def test_rollup_is_durable_and_idempotent(client: AsyncClient) -> None:
    account_id, key = await make_account(client)
    for _ in range(4):
        await client.get("/v1/products", headers=key_headers(key))
    first = await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert first.status_code == 200 and first.json()["rows"] == 1
    (row,) = await _rolled(account_id)
    assert row[0] == "products.list" and row[2] == 4
    again = await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    # its admission buckets are still open to refunds: it stays dirty (same numbers rewritten)
    assert again.json()["hashes"] == 1 and again.json()["cleared"] == 0
    await client.get("/v1/products", headers=key_headers(key))
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    assert [r[2] for r in await _rolled(account_id)] == [5]  # absolute, never added twice
    assert (await client.get("/v1/usage", headers=key_headers(key))).json()["used"] == 5


async def test_a_lost_redis_loses_only_the_unrolled_interval(
    app: FastAPI, client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    await client.put(
        "/v1/admin/plans/free",
        json={"included_calls": 10},
        headers={"X-API-Key": app.state.services.settings.ADMIN_API_KEY.get_secret_value()},
    )
    account_id, key = await make_account(client)
    for _ in range(6):
        await client.get("/v1/products", headers=key_headers(key))
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    for _ in range(2):  # counted in Redis, not yet rolled up
        await client.get("/v1/products", headers=key_headers(key))
    # Redis loses everything of ours (a flush, a failover to an empty replica)
    keys = [k async for k in raw_redis.scan_iter(match=f"{redis_prefix}*")]
    await raw_redis.delete(*keys)
    app.state.services.gate.cache.clear()  # a cold instance, as after a redeploy
    statuses = [
        (await client.get("/v1/products", headers=key_headers(key))).status_code for _ in range(6)
    ]
    # 6 rolled up survive; the 2 un-rolled are lost; 4 more fit in the quota of 10
    assert statuses == [200, 200, 200, 200, 429, 429]
    await client.get("/v1/internal/cron/rollup-usage", headers=CRON)
    rows = await _rolled(account_id)
    assert sorted(r[2] for r in rows) == [4, 6] and len({r[1] for r in rows}) == 2
    assert (await client.get("/v1/usage", headers=key_headers(key))).json()["used"] == 10
