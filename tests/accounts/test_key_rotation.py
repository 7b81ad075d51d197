"""Key rotation with a grace period: the new key once, the old one until `expires_at`, then 401
on every instance on its next request, decided from the cached context without a query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.core.config import Settings
from app.main import create_app
from tests.support.factories import key_headers, make_account
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Exact query counts and "on the very next request": a Redis budget a loaded machine does
    not exceed (past it the gate fails open and a policy change is not seen)."""
    return settings.model_copy(update={"REDIS_TIMEOUT_MS": PATIENT_REDIS_TIMEOUT_MS})


@pytest.fixture
async def other(app: FastAPI) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """A second instance (another serverless function) on the same Postgres and Redis."""
    second = create_app(app.state.services.settings)
    async with AsyncClient(transport=ASGITransport(second), base_url="http://b") as client:
        yield second, client
    await second.state.services.close()


async def rotate(client: AsyncClient, key: str, key_id: str, body: Any = None) -> Response:
    if body is None:
        return await client.post(f"/v1/keys/{key_id}/rotate", headers=key_headers(key))
    return await client.post(f"/v1/keys/{key_id}/rotate", json=body, headers=key_headers(key))


async def first_key_id(client: AsyncClient, key: str) -> str:
    return str((await client.get("/v1/keys", headers=key_headers(key))).json()["data"][0]["id"])


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_rotation_returns_the_new_key_once_and_keeps_the_old_one_for_the_grace(
    client: AsyncClient,
) -> None:
    _, old = await make_account(client)
    old_id = await first_key_id(client, old)
    before = datetime.now(UTC)
    response = await rotate(client, old, old_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["old_key_id"] == old_id and body["name"] == "default"
    assert body["status"] == "active" and body["expires_at"] is None
    assert body["api_key"].startswith(body["prefix"]) and body["id"] != old_id
    grace = when(body["old_key_expires_at"]) - before  # the default: 24 hours
    assert timedelta(hours=24) <= grace < timedelta(hours=24, seconds=30)
    for key in (old, body["api_key"]):
        assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    listed = {
        k["id"]: k for k in (await client.get("/v1/keys", headers=key_headers(old))).json()["data"]
    }
    assert listed[old_id]["expires_at"] == body["old_key_expires_at"]
    assert listed[body["id"]]["expires_at"] is None and "api_key" not in listed[body["id"]]
    again = await rotate(client, old, old_id)
    assert again.status_code == 409 and again.json()["error"] == "key_already_rotated"
    assert when(again.json()["expires_at"]) == when(listed[old_id]["expires_at"])


@pytest.mark.parametrize(
    "body",
    [
        {"grace_seconds": True},
        {"grace_seconds": -1},
        {"grace_seconds": 604_801},
        {"grace_seconds": "60"},
        {"grace_seconds": 1.5},
        {"grace_seconds": None},
        {"grace_seconds": 60, "extra": 1},
        [60],
    ],
)
async def test_bad_grace_periods_are_422(client: AsyncClient, body: Any) -> None:
    _, key = await make_account(client)
    response = await rotate(client, key, await first_key_id(client, key), body)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert len((await client.get("/v1/keys", headers=key_headers(key))).json()["data"]) == 1


async def test_the_longest_grace_is_seven_days(client: AsyncClient) -> None:
    _, key = await make_account(client)
    before = datetime.now(UTC)
    response = await rotate(
        client, key, await first_key_id(client, key), {"grace_seconds": 604_800}
    )
    assert response.status_code == 201
    grace = when(response.json()["old_key_expires_at"]) - before
    assert timedelta(days=7) <= grace < timedelta(days=7, seconds=30)


async def test_grace_zero_stops_the_old_key_at_once_on_a_warm_instance(
    app: FastAPI, client: AsyncClient, other: tuple[FastAPI, AsyncClient]
) -> None:
    _, second = other
    _, old = await make_account(client)
    assert (await second.get("/v1/products", headers=key_headers(old))).status_code == 200  # warm
    rotated = await rotate(client, old, await first_key_id(client, old), {"grace_seconds": 0})
    assert rotated.status_code == 201
    new = rotated.json()["api_key"]
    for instance in (second, client):
        response = await instance.get("/v1/products", headers=key_headers(old))
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_api_key"
        assert "expired after it was rotated" in response.json()["message"]
        assert (await instance.get("/v1/products", headers=key_headers(new))).status_code == 200
    control = await client.get("/v1/keys", headers=key_headers(old))
    assert control.status_code == 401 and "rotated" in control.json()["message"]
    listed = (await client.get("/v1/keys", headers=key_headers(new))).json()["data"]
    assert [k["id"] for k in listed] == [rotated.json()["id"]]  # an expired key is not listed


async def test_an_expired_key_stops_on_every_instance_without_a_query(
    app: FastAPI, client: AsyncClient, other: tuple[FastAPI, AsyncClient]
) -> None:
    """Both instances cached the old key during its grace; once it has passed, each refuses it
    on its very next request from the cached `expires_at`: no database statement at all."""
    second_app, second = other
    _, old = await make_account(client)
    assert (await second.get("/v1/products", headers=key_headers(old))).status_code == 200
    rotated = await rotate(client, old, await first_key_id(client, old), {"grace_seconds": 2})
    assert rotated.status_code == 201
    ends = when(rotated.json()["old_key_expires_at"])
    for instance in (client, second):  # each reloads after the rotation and caches the end
        assert (await instance.get("/v1/products", headers=key_headers(old))).status_code == 200
    await asyncio.sleep((ends - datetime.now(UTC)).total_seconds() + 0.05)
    instances = ((app, client), (second_app, second))
    before = [a.state.services.db.queries.count for a, _ in instances]
    for _, instance in instances:
        for path in ("/v1/products", "/v1/keys"):  # data plane and control plane
            response = await instance.get(path, headers=key_headers(old))
            assert response.status_code == 401, response.text
            assert "expired after it was rotated" in response.json()["message"]
    assert [a.state.services.db.queries.count for a, _ in instances] == before
    new = key_headers(rotated.json()["api_key"])
    assert (await second.get("/v1/products", headers=new)).status_code == 200


async def test_revoked_expired_and_foreign_keys_cannot_be_rotated(client: AsyncClient) -> None:
    _, key = await make_account(client)
    _, stranger = await make_account(client)
    spare = (await client.post("/v1/keys", headers=key_headers(key))).json()
    assert (
        await client.delete(f"/v1/keys/{spare['id']}", headers=key_headers(key))
    ).status_code == 200
    expiring = (await client.post("/v1/keys", headers=key_headers(key))).json()
    assert (await rotate(client, key, expiring["id"], {"grace_seconds": 0})).status_code == 201
    for key_id in (spare["id"], expiring["id"], await first_key_id(client, stranger), "key_nope"):
        response = await rotate(client, key, key_id)
        assert response.status_code == 404 and response.json()["error"] == "key_not_found"
        revoke = await client.delete(f"/v1/keys/{key_id}", headers=key_headers(key))
        assert revoke.status_code == 404


async def test_the_last_working_key_is_rotated_not_revoked(client: AsyncClient) -> None:
    _, old = await make_account(client)
    old_id = await first_key_id(client, old)
    refused = await client.delete(f"/v1/keys/{old_id}", headers=key_headers(old))
    assert refused.status_code == 409 and refused.json()["error"] == "last_key"
    assert "rotate" in refused.json()["message"].lower()
    new = (await rotate(client, old, old_id)).json()
    # the old key ends with its grace, so the new one is now the last that keeps working
    refused = await client.delete(f"/v1/keys/{new['id']}", headers=key_headers(old))
    assert refused.status_code == 409 and refused.json()["error"] == "last_key"
    revoked = await client.delete(f"/v1/keys/{old_id}", headers=key_headers(new["api_key"]))
    assert revoked.status_code == 200  # ending the grace early is fine
    assert (await client.get("/v1/products", headers=key_headers(old))).status_code == 401


async def test_a_rotated_key_counts_towards_the_limit_until_it_expires(
    client: AsyncClient,
) -> None:
    _, key = await make_account(client)
    for _ in range(9):
        assert (await client.post("/v1/keys", headers=key_headers(key))).status_code == 201
    key_id = await first_key_id(client, key)
    full = await rotate(client, key, key_id, {"grace_seconds": 60})
    assert full.status_code == 409 and full.json()["error"] == "key_limit_reached"
    assert "grace_seconds 0" in full.json()["message"]
    rotated = await rotate(client, key, key_id, {"grace_seconds": 0})  # nothing added
    assert rotated.status_code == 201
    new = key_headers(rotated.json()["api_key"])
    listed = (await client.get("/v1/keys", headers=new)).json()["data"]
    assert len(listed) == 10 and key_id not in {k["id"] for k in listed}
    assert (await client.post("/v1/keys", headers=new)).status_code == 409
