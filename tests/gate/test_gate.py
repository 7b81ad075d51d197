"""The monetized request path end to end, on Redis by URL and on Upstash REST (real SDK)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.accounts import service as accounts
from app.core.config import Settings
from app.main import create_app
from tests.support.factories import (
    ADMIN,
    key_headers,
    make_account,
    make_products,
    set_account_plan,
    set_plan,
)
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS

RATE_HEADERS = {
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-quota-limit",
    "x-quota-remaining",
    "x-quota-reset",
    "ratelimit-policy",
    "ratelimit",
}


@pytest.fixture
async def patient_app(settings: Settings, clean_database: None) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings.model_copy(update={"REDIS_TIMEOUT_MS": PATIENT_REDIS_TIMEOUT_MS})
    )
    yield application
    await application.state.services.close()


@pytest.fixture
async def patient_client(patient_app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=patient_app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def degraded(*responses: Response) -> list[Response]:
    return [r for r in responses if "x-ratelimit-degraded" in r.headers]


async def test_signup_key_product_read_with_headers(client: AsyncClient) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client)
    response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sku"] == sku and body["stock"] == 5 and body["in_stock"] is True
    assert RATE_HEADERS <= set(response.headers)
    assert (
        response.headers["x-ratelimit-limit"] == "10"
    )  # free: 10/minute is closest to running out
    assert response.headers["x-ratelimit-remaining"] == "9"
    assert response.headers["x-quota-limit"] == "1000"
    assert response.headers["x-quota-remaining"] == "999"
    assert int(response.headers["x-ratelimit-reset"]) > time.time()
    assert response.headers["ratelimit-policy"].startswith('"minute";q=10;w=60, "month";q=1000;w=')
    assert response.headers["ratelimit"].startswith('"minute";r=9;t=')
    assert "x-ratelimit-degraded" not in response.headers


async def test_missing_and_invalid_keys(client: AsyncClient) -> None:
    response = await client.get("/v1/products")
    assert response.status_code == 401 and response.json()["error"] == "missing_api_key"
    unicode_key = ("am_live_" + "é" * 43).encode()
    for bad in [b"nope", b"am_live_" + b"x" * 43, unicode_key, b"a" * 5000, b"am_live_"]:
        response = await client.get("/v1/products", headers={"X-API-Key": bad})
        assert response.status_code == 401, bad
        assert response.json()["error"] == "invalid_api_key"
        assert set(response.json()) >= {"error", "message"}


async def test_free_quota_is_a_hard_gate(client: AsyncClient) -> None:
    await set_plan(client, "free", included_calls=3, requests_per_minute=100)
    _, key = await make_account(client)
    for remaining in (2, 1, 0):
        response = await client.get("/v1/products", headers=key_headers(key))
        assert response.status_code == 200
        assert response.headers["x-quota-remaining"] == str(remaining)
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "quota_exceeded"
    assert body["upgrade_url"].startswith("https://api.agentmall.test/v1/billing/upgrade?token=")
    assert body["reset"] == int(response.headers["x-quota-reset"]) > time.time()
    assert response.headers["x-ratelimit-limit"] == "3"  # the quota is what ran out
    assert int(response.headers["retry-after"]) > 60
    assert RATE_HEADERS <= set(response.headers)
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 3  # denied requests consume nothing


async def test_minute_window(client: AsyncClient) -> None:
    await set_plan(client, "free", requests_per_minute=3)
    _, key = await make_account(client)
    statuses = [
        (await client.get("/v1/products", headers=key_headers(key))).status_code for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.json()["error"] == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 61  # whole seconds of Redis time
    assert response.headers["x-ratelimit-remaining"] == "0"
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 3


async def test_feature_gate(client: AsyncClient) -> None:
    _, key = await make_account(client)
    response = await client.post(
        "/v1/products/bulk", json={"skus": ["A"]}, headers=key_headers(key)
    )
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "feature_not_in_plan"
    assert body["upgrade_url"].startswith("https://api.agentmall.test/")


async def test_bulk_costs_one_unit_per_ten_skus(client: AsyncClient) -> None:
    skus = await make_products(client, 25)
    account_id, key = await make_account(client, plan="pro")
    response = await client.post(
        "/v1/products/bulk", json={"skus": skus + ["MISSING-1"]}, headers=key_headers(key)
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 25 and response.json()["not_found"] == ["MISSING-1"]
    assert response.headers["x-quota-remaining"] == str(50_000 - 3)  # 26 SKUs -> 3 units
    assert response.headers["x-ratelimit-remaining"] == str(120 - 3)


async def test_revoked_key_fails_on_the_next_request(client: AsyncClient) -> None:
    _, key = await make_account(client)
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    created = await client.post("/v1/keys", json={"name": "ci"}, headers=key_headers(key))
    other = created.json()
    assert (
        await client.get("/v1/products", headers=key_headers(other["api_key"]))
    ).status_code == 200
    revoked = await client.delete(f"/v1/keys/{other['id']}", headers=key_headers(key))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    response = await client.get("/v1/products", headers=key_headers(other["api_key"]))
    assert response.status_code == 401 and response.json()["error"] == "invalid_api_key"
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200


async def test_revocation_reaches_every_warm_instance(
    patient_app: FastAPI, patient_client: AsyncClient
) -> None:
    """Two app instances (two serverless functions) share Postgres and Redis: a key revoked
    through one stops working on the other's very next request, despite its warm cache.
    (A slow or lost publish: tests/gate/test_policy_publish.py.)"""
    client = patient_client
    other_app = create_app(patient_app.state.services.settings)
    async with AsyncClient(transport=ASGITransport(other_app), base_url="http://b") as other:
        _, key = await make_account(client)
        created = (await client.post("/v1/keys", headers=key_headers(key))).json()
        warm = await other.get("/v1/products", headers=key_headers(created["api_key"]))
        assert warm.status_code == 200 and not degraded(warm)
        assert (
            await client.delete(f"/v1/keys/{created['id']}", headers=key_headers(key))
        ).status_code == 200
        response = await other.get("/v1/products", headers=key_headers(created["api_key"]))
        assert response.status_code == 401
    await other_app.state.services.close()


async def test_suspension_and_unsuspension(app: FastAPI, client: AsyncClient) -> None:
    _, key = await make_account(client)
    keys = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"]
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    response = await client.post(f"/v1/admin/keys/{keys[0]['id']}/suspend", headers=ADMIN)
    assert response.status_code == 200 and response.json()["status"] == "suspended"
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 403 and response.json()["error"] == "key_suspended"
    assert (
        await client.post(f"/v1/admin/keys/{keys[0]['id']}/unsuspend", headers=ADMIN)
    ).status_code == 200
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200


async def test_past_due_gets_402(app: FastAPI, client: AsyncClient) -> None:
    account_id, key = await make_account(client, plan="pro")
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    services = app.state.services
    async with services.db.unit() as session:
        await accounts.set_subscription_status(
            session, services.versions, account_id=account_id, status="past_due"
        )
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 402
    assert response.json()["error"] == "payment_required"
    assert response.json()["billing_portal_url"].startswith("https://api.agentmall.test/")
    # the control plane still answers, so the developer can fix the payment
    assert (await client.get("/v1/account", headers=key_headers(key))).status_code == 200


async def test_plan_change_takes_effect_on_the_next_request(client: AsyncClient) -> None:
    account_id, key = await make_account(client)
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.headers["x-ratelimit-limit"] == "10"
    await set_plan(client, "free", requests_per_minute=42)
    response = await client.get("/v1/products", headers=key_headers(key))
    assert response.headers["x-ratelimit-limit"] == "42"
    await set_account_plan(client, account_id, "pro")
    response = await client.post(
        "/v1/products/bulk", json={"skus": ["X"]}, headers=key_headers(key)
    )
    assert response.status_code == 200
    assert response.headers["x-quota-limit"] == "50000"


async def test_concurrent_requests_admit_exactly_the_remaining_allowance(
    patient_client: AsyncClient,
) -> None:
    client = patient_client
    await set_plan(client, "free", included_calls=50, requests_per_minute=10_000)
    _, key = await make_account(client)
    assert (await client.get("/v1/health")).status_code == 200
    responses = await asyncio.gather(
        *(client.get("/v1/products?limit=1", headers=key_headers(key)) for _ in range(200))
    )
    assert not degraded(*responses)  # every request went through the gate script
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50
    assert statuses.count(429) == 150
    assert {r.json()["error"] for r in responses if r.status_code == 429} == {"quota_exceeded"}
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 50 and usage["remaining"] == 0


async def test_failed_calls_are_not_counted(client: AsyncClient) -> None:
    _, key = await make_account(client)
    response = await client.get("/v1/products/NOPE-1", headers=key_headers(key))
    assert response.status_code == 404 and response.json()["error"] == "product_not_found"
    response = await client.get("/v1/products?cursor=garbage.x", headers=key_headers(key))
    assert response.status_code == 400
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 0


async def test_warm_key_costs_one_redis_command_and_no_gate_query(
    app: FastAPI, client: AsyncClient
) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client)
    assert (await client.get(f"/v1/products/{sku}", headers=key_headers(key))).status_code == 200
    services = app.state.services
    redis_before, queries_before = services.redis.commands, services.db.queries.count
    for _ in range(5):
        assert (
            await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        ).status_code == 200
    assert services.redis.commands - redis_before == 5
    # no query at all: the key from the instance's cache, the product from its copy (the gate's
    # command said it is current: tests/catalog/test_hot_reads.py)
    assert services.db.queries.count - queries_before == 0


async def test_a_crashing_handler_is_not_counted(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.catalog.search.service import Search

    async def boom(*_: object, **__: object) -> None:
        raise RuntimeError("bug")

    _, key = await make_account(client)
    monkeypatch.setattr(Search, "run", boom)
    transport = ASGITransport(app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://t") as raw:
        response = await raw.get("/v1/products", headers=key_headers(key))
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "Something went wrong on our side.",
    }
    monkeypatch.undo()
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 0


async def test_concurrent_cold_requests_load_the_key_once(
    app: FastAPI, client: AsyncClient
) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client, plan="pro")
    services = app.state.services
    services.gate.cache.clear()  # a cold instance
    services.products.max_entries = 0  # every product read from PostgreSQL: only keys counted
    before = services.db.queries.count
    responses = await asyncio.gather(
        *(client.get(f"/v1/products/{sku}", headers=key_headers(key)) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {200}
    # 20 product lookups, plus one key load (key+account+plan, rolled-up usage) shared by all
    assert services.db.queries.count - before == 20 + 2
