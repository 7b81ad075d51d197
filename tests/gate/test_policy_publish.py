"""A committed policy change reaches every warm instance, even when Redis answered slowly a moment
before, or lost the publish itself (Upstash REST through the bridge, where both were seen)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.accounts.versions import SET_VERSION
from app.core.config import Settings
from app.main import create_app
from app.redis.port import RedisUnavailable
from tests.support.factories import key_headers, make_account
from tests.support.upstash_bridge import Command, UpstashBridge


@pytest.fixture
def backend() -> str:
    """Only the Upstash adapter: the bridge is what delays (or loses) a reply here."""
    return "upstash"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The production Redis budget (500 ms): these tests make Redis answer later than it."""
    return settings.model_copy(update={"REDIS_TIMEOUT_MS": 500})


@pytest.fixture
async def other(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A second warm instance (another serverless function) on the same Postgres and Redis."""
    other_app = create_app(app.state.services.settings)
    async with AsyncClient(transport=ASGITransport(other_app), base_url="http://b") as client:
        yield client
    await other_app.state.services.close()


async def _key_warm_on_other(client: AsyncClient, other: AsyncClient) -> tuple[str, str, str]:
    """An account key (to manage keys with) and a second key, cached by the other instance."""
    _, owner = await make_account(client)
    created = (await client.post("/v1/keys", headers=key_headers(owner))).json()
    response = await other.get("/v1/products", headers=key_headers(created["api_key"]))
    assert response.status_code == 200
    return owner, created["id"], created["api_key"]


async def test_a_revocation_right_after_a_slow_redis_reply_still_reaches_other_instances(
    app: FastAPI,
    client: AsyncClient,
    other: AsyncClient,
    bridge: UpstashBridge,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under load one Redis reply on this instance comes late: the port gives up after
    REDIS_TIMEOUT_MS and refuses every call for its cooldown. A revocation committed in that
    second used to publish nothing, so the other instance kept serving the revoked key."""
    owner, key_id, revoked = await _key_warm_on_other(client, other)
    monkeypatch.setattr(bridge, "reply_delay_seconds", 1.0)  # > REDIS_TIMEOUT_MS (500 ms)
    monkeypatch.setattr(bridge, "delay_only", lambda commands: commands[0][0] == "PING")
    with pytest.raises(RedisUnavailable, match="timed out"):
        await app.state.services.redis.ping()
    response = await client.delete(f"/v1/keys/{key_id}", headers=key_headers(owner))
    assert response.status_code == 200
    response = await other.get("/v1/products", headers=key_headers(revoked))
    assert response.status_code == 401 and response.json()["error"] == "invalid_api_key"


async def test_a_lost_publish_is_sent_again(
    client: AsyncClient,
    other: AsyncClient,
    bridge: UpstashBridge,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The publish's request hangs and never reaches Redis (dropped when the client gives up)."""
    owner, key_id, revoked = await _key_warm_on_other(client, other)
    held: list[Command] = []

    def first_publish(commands: list[Command]) -> bool:
        if held or commands[0][:2] != ["EVALSHA", SET_VERSION.sha]:
            return False
        held.append(commands[0])
        return True

    monkeypatch.setattr(bridge, "delay_seconds", 5.0)  # executed, if ever, long after the test
    monkeypatch.setattr(bridge, "delay_only", first_publish)
    response = await client.delete(f"/v1/keys/{key_id}", headers=key_headers(owner))
    assert response.status_code == 200 and held  # the first publish was held
    response = await other.get("/v1/products", headers=key_headers(revoked))
    assert response.status_code == 401 and response.json()["error"] == "invalid_api_key"
