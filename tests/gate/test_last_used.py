"""When each key was last used: recorded by the gate script on admission only, in the same single
Redis command, and shown by GET /v1/keys (`last_used_at`), on Redis by URL and on Upstash REST."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.redis.keys import RedisKeys
from app.redis.port import RedisUnavailable
from app.usage.service import LAST_USED_RETENTION_S, last_used
from tests.support.factories import ADMIN, key_headers, make_account, make_products, set_plan

LONG_AGO = 1_000_000_000  # 2001-09-09: a last use no request of this test could have written


async def _listed(client: AsyncClient, key: str) -> dict[str, datetime | None]:
    """GET /v1/keys as `key`: last_used_at by key id."""
    response = await client.get("/v1/keys", headers=key_headers(key))
    assert response.status_code == 200, response.text
    return {
        k["id"]: datetime.fromisoformat(k["last_used_at"]) if k["last_used_at"] else None
        for k in response.json()["data"]
    }


async def _second_key(client: AsyncClient, key: str) -> dict[str, Any]:
    created = await client.post("/v1/keys", json={"name": "spare"}, headers=key_headers(key))
    assert created.status_code == 201, created.text
    assert created.json()["last_used_at"] is None
    return dict(created.json())


async def _key_id(client: AsyncClient, key: str, other_id: str) -> str:
    (key_id,) = set(await _listed(client, key)) - {other_id}
    return key_id


async def test_a_used_key_shows_when_and_an_unused_one_null(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    account_id, key = await make_account(client)
    spare = await _second_key(client, key)
    used_id = await _key_id(client, key, spare["id"])
    assert await _listed(client, key) == {used_id: None, spare["id"]: None}  # control plane: no
    before = time.time()
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    after = time.time()
    listed = await _listed(client, key)
    assert listed[spare["id"]] is None
    seen = listed[used_id]
    assert seen is not None and seen.tzinfo is not None
    assert int(before) - 1 <= seen.timestamp() <= after + 1  # Redis's clock, whole seconds
    hash_key = RedisKeys(redis_prefix).last_used(account_id)
    assert await raw_redis.hgetall(hash_key) == {used_id: str(int(seen.timestamp()))}
    assert LAST_USED_RETENTION_S - 60 <= await raw_redis.ttl(hash_key) <= LAST_USED_RETENTION_S


async def test_a_request_the_handler_fails_still_used_the_key(client: AsyncClient) -> None:
    """Admitted, then refunded (404): the key did get through, so it counts as used."""
    _, key = await make_account(client)
    response = await client.get("/v1/products/NOPE-1", headers=key_headers(key))
    assert response.status_code == 404
    assert [v is not None for v in (await _listed(client, key)).values()] == [True]


async def _use_then_backdate(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str, account_id: str, key: str
) -> str:
    """Use `key` once (admitted), then move its recorded last use far into the past, so any
    later write, whatever the second, shows."""
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    (key_id,) = await _listed(client, key)
    await raw_redis.hset(RedisKeys(redis_prefix).last_used(account_id), key_id, LONG_AGO)
    return key_id


async def test_rate_limited_requests_do_not_touch_last_used(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    await set_plan(client, "free", requests_per_minute=1)
    account_id, key = await make_account(client)
    key_id = await _use_then_backdate(client, raw_redis, redis_prefix, account_id, key)
    for _ in range(3):
        response = await client.get("/v1/products", headers=key_headers(key))
        assert response.status_code == 429
        assert response.json()["error"] == "rate_limit_exceeded"
    assert (await _listed(client, key))[key_id] == datetime.fromtimestamp(LONG_AGO, UTC)


async def test_requests_over_the_quota_do_not_touch_last_used(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    await set_plan(client, "free", included_calls=1, requests_per_minute=100)
    account_id, key = await make_account(client)
    key_id = await _use_then_backdate(client, raw_redis, redis_prefix, account_id, key)
    for _ in range(3):
        response = await client.get("/v1/products", headers=key_headers(key))
        assert response.status_code == 429 and response.json()["error"] == "quota_exceeded"
    assert (await _listed(client, key))[key_id] == datetime.fromtimestamp(LONG_AGO, UTC)


async def test_plan_gate_refusals_do_not_touch_last_used(
    client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    account_id, key = await make_account(client)
    key_id = await _use_then_backdate(client, raw_redis, redis_prefix, account_id, key)
    response = await client.post(
        "/v1/products/bulk", json={"skus": ["A"]}, headers=key_headers(key)
    )
    assert response.status_code == 403 and response.json()["error"] == "feature_not_in_plan"
    spare = await _second_key(client, key)
    suspended = await client.post(f"/v1/admin/keys/{key_id}/suspend", headers=ADMIN)
    assert suspended.status_code == 200
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 403 and response.json()["error"] == "key_suspended"
    listed = await _listed(client, spare["api_key"])
    assert listed == {key_id: datetime.fromtimestamp(LONG_AGO, UTC), spare["id"]: None}


async def test_the_gate_stays_one_redis_command_per_request(
    app: FastAPI, client: AsyncClient, raw_redis: aioredis.Redis, redis_prefix: str
) -> None:
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    assert (await client.get(f"/v1/products/{sku}", headers=key_headers(key))).status_code == 200
    services = app.state.services
    redis_before = services.redis.commands
    for _ in range(5):
        response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        assert response.status_code == 200
    assert services.redis.commands - redis_before == 5  # the gate script only
    assert len(await raw_redis.hgetall(RedisKeys(redis_prefix).last_used(account_id))) == 1


async def test_redis_unavailable_lists_keys_with_last_used_unknown(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id, key = await make_account(client)
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    services = app.state.services
    assert list((await last_used(services.redis, services.keys, account_id)).values())

    async def down(*_: object, **__: object) -> None:
        raise RedisUnavailable("test: Redis is away")

    monkeypatch.setattr(services.redis, "run_script", down)
    assert await last_used(services.redis, services.keys, account_id) == {}
    assert list((await _listed(client, key)).values()) == [None]
