"""Sign-up, keys, account and plans: the control plane."""

from __future__ import annotations

import asyncpg
import pytest
from httpx import AsyncClient

from app.core.apikeys import KEY_PREFIX, hash_key
from tests.conftest import CRON_SECRET, database_url
from tests.support.factories import ADMIN, key_headers, make_account


async def test_signup_returns_a_key_once_and_stores_only_its_hash(client: AsyncClient) -> None:
    response = await client.post("/v1/signup", json={"email": "  Ada@Example.COM "})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"account_id", "api_key", "plan"} and body["plan"] == "free"
    key = body["api_key"]
    assert key.startswith(KEY_PREFIX) and len(key) >= len(KEY_PREFIX) + 43  # 256 random bits
    conn = await asyncpg.connect(database_url())
    stored = await conn.fetchrow("SELECT key_hash, prefix FROM api_keys")
    email = await conn.fetchval("SELECT email FROM accounts")
    dump = " ".join(str(v) for r in await conn.fetch("SELECT * FROM api_keys") for v in r.values())
    await conn.close()
    assert stored["key_hash"] == hash_key(key) and key not in dump
    assert email == "ada@example.com"
    account = (await client.get("/v1/account", headers=key_headers(key))).json()
    assert account["email"] == "ada@example.com" and account["plan"]["code"] == "free"
    assert account["current_period"]["start"] < account["current_period"]["end"]
    for spelling in ["ada@example.com", "ADA@EXAMPLE.COM", "ａｄａ@example.com"]:
        again = await client.post("/v1/signup", json={"email": spelling})
        assert again.status_code == 409 and again.json()["error"] == "email_taken", spelling


@pytest.mark.parametrize(
    "payload",
    [{"email": "not-an-email"}, {"email": "a@b"}, {"email": ""}, {"email": "x" * 250 + "@e.com"}],
)
async def test_signup_rejects_bad_emails(client: AsyncClient, payload: dict[str, str]) -> None:
    response = await client.post("/v1/signup", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] in {"invalid_email", "validation_error"}


@pytest.mark.parametrize("payload", [{}, {"email": 5}, {"email": "a@example.com", "x": 1}, []])
async def test_signup_rejects_bad_bodies(client: AsyncClient, payload: object) -> None:
    response = await client.post("/v1/signup", json=payload)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"


async def test_signup_is_limited_per_client_ip(client: AsyncClient) -> None:
    statuses = [
        (await client.post("/v1/signup", json={"email": f"flood{i}@example.com"})).status_code
        for i in range(7)
    ]
    assert statuses == [201] * 5 + [429] * 2
    response = await client.post("/v1/signup", json={"email": "late@example.com"})
    assert response.json()["error"] == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1


async def test_key_lifecycle(client: AsyncClient) -> None:
    _, key = await make_account(client)
    created = await client.post("/v1/keys", json={"name": "laptop"}, headers=key_headers(key))
    assert created.status_code == 201
    new = created.json()
    listed = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"]
    assert {k["name"] for k in listed} == {"default", "laptop"}
    assert all("api_key" not in k and len(k["prefix"]) == 12 for k in listed)
    assert (
        await client.delete(f"/v1/keys/{new['id']}", headers=key_headers(key))
    ).status_code == 200
    again = await client.delete(f"/v1/keys/{new['id']}", headers=key_headers(key))
    assert again.status_code == 404 and again.json()["error"] == "key_not_found"
    listed = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"]
    assert [k["name"] for k in listed] == ["default"]
    last = await client.delete(f"/v1/keys/{listed[0]['id']}", headers=key_headers(key))
    assert last.status_code == 409 and last.json()["error"] == "last_key"


async def test_keys_are_private_to_their_account(client: AsyncClient) -> None:
    _, mine = await make_account(client)
    _, theirs = await make_account(client)
    their_keys = (await client.get("/v1/keys", headers=key_headers(theirs))).json()["data"]
    response = await client.delete(f"/v1/keys/{their_keys[0]['id']}", headers=key_headers(mine))
    assert response.status_code == 404
    assert (await client.get("/v1/account", headers=key_headers(theirs))).status_code == 200


async def test_key_count_is_bounded(client: AsyncClient) -> None:
    _, key = await make_account(client)
    for _ in range(9):
        assert (await client.post("/v1/keys", headers=key_headers(key))).status_code == 201
    response = await client.post("/v1/keys", headers=key_headers(key))
    assert response.status_code == 409 and response.json()["error"] == "key_limit_reached"
    response = await client.post("/v1/keys", json={"name": "n" * 101}, headers=key_headers(key))
    assert response.status_code == 422


async def test_plans_are_public_and_editable_by_the_founder(client: AsyncClient) -> None:
    plans = (await client.get("/v1/plans")).json()["data"]
    assert [p["code"] for p in plans] == ["free", "pro", "enterprise"]
    pro = plans[1]
    assert pro["monthly_price_cents"] == 4900 and pro["overage_cents_per_1000"] == 200
    assert pro["included_calls"] == 50_000 and pro["requests_per_minute"] == 120
    created = await client.put(
        "/v1/admin/plans/team",
        json={
            "name": "Team",
            "included_calls": 200_000,
            "requests_per_minute": 300,
            "features": ["catalog.read", "catalog.bulk"],
            "monthly_price_cents": 9900,
        },
        headers=ADMIN,
    )
    assert created.status_code == 200 and created.json()["code"] == "team"
    incomplete = await client.put("/v1/admin/plans/solo", json={"name": "Solo"}, headers=ADMIN)
    assert incomplete.status_code == 422  # a validation error naming what a new plan needs
    assert {f["field"] for f in incomplete.json()["fields"]} == {
        "included_calls",
        "requests_per_minute",
    }
    bad = await client.put("/v1/admin/plans/team", json={"features": ["teleport"]}, headers=ADMIN)
    assert bad.status_code == 422
    bad = await client.put("/v1/admin/plans/BAD CODE", json={}, headers=ADMIN)
    assert bad.status_code == 422
    missing = await client.put(
        "/v1/admin/accounts/acct_nope/plan", json={"plan": "pro"}, headers=ADMIN
    )
    assert missing.status_code == 404 and missing.json()["error"] == "account_not_found"
    account_id, _ = await make_account(client)
    unknown = await client.put(
        f"/v1/admin/accounts/{account_id}/plan", json={"plan": "gold"}, headers=ADMIN
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "plan_not_found"


async def test_admin_top_usage(client: AsyncClient) -> None:
    response = await client.get("/v1/admin/usage/top", headers=ADMIN)
    assert response.status_code == 200 and response.json()["data"] == []
    light_id, light = await make_account(client)
    heavy_id, heavy = await make_account(client)
    for key, calls in ((light, 1), (heavy, 3)):
        for _ in range(calls):
            assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    cron = {"Authorization": f"Bearer {CRON_SECRET}"}
    assert (await client.get("/v1/internal/cron/rollup-usage", headers=cron)).status_code == 200
    top = (await client.get("/v1/admin/usage/top", headers=ADMIN)).json()["data"]
    assert [(row["account_id"], row["used"]) for row in top] == [(heavy_id, 3), (light_id, 1)]
    response = await client.get("/v1/admin/usage/top", headers={"X-API-Key": "wrong"})
    assert response.status_code == 401
    response = await client.get("/v1/admin/usage/top", headers=key_headers(heavy))
    assert response.status_code == 403
