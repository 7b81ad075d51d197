"""The gate never answers 500 for a state it can recover from, never sells an unusable request,
and shows abuse as it happens."""

from __future__ import annotations

import logging

import asyncpg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from tests.conftest import database_url
from tests.support.factories import (
    ADMIN,
    key_headers,
    make_account,
    make_products,
    set_account_plan,
)


async def test_redis_ahead_of_postgres_is_repaired_not_a_500(
    client: AsyncClient,
    raw_redis: aioredis.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restored database (or two environments sharing one Redis) leaves Redis holding newer
    policy versions than Postgres: every reload would be STALE again."""
    account_id, key = await make_account(client)
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    await raw_redis.set(f"{redis_prefix}v:a:{account_id}", 999)
    await raw_redis.set(f"{redis_prefix}v:p:free", 998)
    with caplog.at_level(logging.WARNING, logger="agentmall.gate"):
        response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 200, response.text
    assert "ahead of Postgres" in caplog.text
    conn = await asyncpg.connect(database_url())
    account_version = await conn.fetchval(
        "SELECT policy_version FROM accounts WHERE id = $1", account_id
    )
    plan_version = await conn.fetchval("SELECT version FROM plans WHERE code = 'free'")
    await conn.close()
    assert int(await raw_redis.get(f"{redis_prefix}v:a:{account_id}")) == account_version
    assert int(await raw_redis.get(f"{redis_prefix}v:p:free")) == plan_version
    # and revocation still works afterwards: the next bump is published above the repaired value
    created = (await client.post("/v1/keys", headers=key_headers(key))).json()
    response = await client.get("/v1/products", headers=key_headers(created["api_key"]))
    assert response.status_code == 200
    await client.delete(f"/v1/keys/{created['id']}", headers=key_headers(key))
    response = await client.get("/v1/products", headers=key_headers(created["api_key"]))
    assert response.status_code == 401


def test_the_redis_prefix_defaults_per_vercel_environment() -> None:
    def prefix(**values: str) -> str:
        return Settings(_env_file=None, **values).REDIS_KEY_PREFIX  # type: ignore[call-arg]

    assert prefix() == "am:"
    assert prefix(VERCEL_ENV="preview") == "am:preview:"
    assert prefix(VERCEL_ENV="development") == "am:development:"
    assert prefix(VERCEL_ENV="preview", REDIS_KEY_PREFIX="shared:") == "shared:"


async def test_plan_edits_that_make_a_feature_unusable_are_refused(client: AsyncClient) -> None:
    response = await client.put(
        "/v1/admin/plans/pro", json={"requests_per_minute": 5}, headers=ADMIN
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "plan_unusable" and body["features"] == ["catalog.bulk"]
    assert "per minute" in body["message"]
    plans = (await client.get("/v1/plans")).json()["data"]
    assert next(p for p in plans if p["code"] == "pro")["requests_per_minute"] == 120
    response = await client.put(
        "/v1/admin/plans/tiny",
        json={
            "name": "Tiny",
            "included_calls": 5,
            "requests_per_minute": 60,
            "features": ["catalog.read", "catalog.bulk"],
        },
        headers=ADMIN,
    )
    assert response.status_code == 422 and response.json()["features"] == ["catalog.bulk"]


async def test_a_request_costing_more_than_the_minute_allows_is_a_clear_422(
    client: AsyncClient,
) -> None:
    """A plan stored before the edit check existed (or edited in SQL) still answers sensibly."""
    skus = await make_products(client, 100)
    account_id, key = await make_account(client)
    conn = await asyncpg.connect(database_url())
    await conn.execute(
        "INSERT INTO plans (code, name, currency, included_calls, requests_per_minute, features,"
        " hard_limit, public, version, updated_at) VALUES ('legacy', 'Legacy', 'usd', 1000, 5,"
        ' \'["catalog.read", "catalog.bulk"]\', false, false, 1, now())'
    )
    await conn.close()
    await set_account_plan(client, account_id, "legacy")
    response = await client.post("/v1/products/bulk", json={"skus": skus}, headers=key_headers(key))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "cost_exceeds_rate_limit"
    assert body["cost"] == 10 and body["requests_per_minute"] == 5
    assert "retry-after" not in response.headers
    small = await client.post(
        "/v1/products/bulk", json={"skus": skus[:10]}, headers=key_headers(key)
    )
    assert small.status_code == 200
    assert (await client.get("/v1/usage", headers=key_headers(key))).json()["used"] == 1


async def test_top_usage_is_live(app: FastAPI, client: AsyncClient) -> None:
    (sku,) = await make_products(client, 1)
    light_id, light = await make_account(client)
    heavy_id, heavy = await make_account(client, plan="pro")
    for key, calls in ((light, 2), (heavy, 5)):
        for _ in range(calls):
            response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
            assert response.status_code == 200
    await client.get("/v1/products/NOPE-1", headers=key_headers(heavy))  # refunded: not shown
    response = await client.get("/v1/admin/usage/top", headers=ADMIN)  # no roll-up has run
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "live"
    assert [(a["account_id"], a["used"], a["plan"]) for a in body["data"]] == [
        (heavy_id, 5, "pro"),
        (light_id, 2, "free"),
    ]
    assert body["period_start"].endswith("-01T00:00:00Z")
    limited = (await client.get("/v1/admin/usage/top?limit=1", headers=ADMIN)).json()
    assert [a["account_id"] for a in limited["data"]] == [heavy_id]


async def test_the_minute_window_stays_small_at_any_limit(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    """One field per second of Redis time, not one entry per call: at most 63 whatever the rpm."""
    skus = await make_products(client, 100)
    account_id, key = await make_account(client, plan="enterprise")
    for _ in range(30):  # 30 bulk calls of cost 10: 300 units inside one minute
        response = await client.post(
            "/v1/products/bulk", json={"skus": skus}, headers=key_headers(key)
        )
        assert response.status_code == 200
    window = f"{redis_prefix}w:{account_id}"
    assert await raw_redis.type(window) == "hash"
    assert 3 <= await raw_redis.hlen(window) <= 63
    buckets = await raw_redis.hgetall(window)
    assert int(buckets.pop("n")) == 300 and int(buckets.pop("o")) <= min(map(int, buckets))
    assert sum(int(v) for v in buckets.values()) == 300
    assert response.headers["x-ratelimit-remaining"] == str(1200 - 300)


async def test_seconds_that_left_the_window_are_trimmed(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    from tests.support.factories import set_plan

    await set_plan(client, "free", requests_per_minute=3)
    account_id, key = await make_account(client)
    now = int((await raw_redis.time())[0])
    window = f"{redis_prefix}w:{account_id}"
    # 5 units 100 s ago (gone), 1 unit 10 s ago (still in the window)
    await raw_redis.hset(
        window, mapping={str(now - 100): 5, str(now - 10): 1, "n": 6, "o": now - 100}
    )
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "1"
    assert int(response.headers["x-ratelimit-reset"]) == now - 10 + 60
    buckets = await raw_redis.hgetall(window)
    assert str(now - 100) not in buckets and buckets["n"] == "2"
    assert buckets["o"] == str(now - 10)
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    denied = await client.get("/v1/products", headers=key_headers(key))
    assert denied.status_code == 429
    assert int(denied.headers["retry-after"]) <= 60 - 10 + 1
