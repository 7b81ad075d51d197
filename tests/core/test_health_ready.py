"""`GET /v1/health/ready` is public, so it is limited per client address, costs one Redis command,
and its database probe goes through the connection cap like every other unit of work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event

from app.core.config import Settings
from app.main import create_app
from tests.conftest import make_settings
from tests.support.factories import random_client_ip
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS

READY = "/v1/health/ready"
PROBE_LIMIT = 60  # PUBLIC_REQUESTS_PER_IP_PER_MINUTE's default, the same for every public route
CAP = 2


def sent_from(address: str) -> dict[str, str]:
    """Headers of a probe from `address` (the test peer is a trusted proxy)."""
    return {"X-Forwarded-For": address}


async def test_probes_are_limited_per_address(app: FastAPI, client: AsyncClient) -> None:
    monitor, neighbour = random_client_ip(), random_client_ip()
    services = app.state.services
    for _ in range(PROBE_LIMIT):
        response = await client.get(READY, headers=sent_from(monitor))
        assert response.status_code == 200, response.text
    queries = services.db.queries.count
    commands = services.redis.commands
    refused = await client.get(READY, headers=sent_from(monitor))
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # A refused probe is cheap: the one Redis command that counted it, no database work.
    assert services.db.queries.count == queries
    assert services.redis.commands == commands + 1
    # Other addresses are still served, and the monitor's other public routes are not spent.
    assert (await client.get(READY, headers=sent_from(neighbour))).status_code == 200
    assert (await client.get("/v1/plans", headers=sent_from(monitor))).status_code == 200
    # Liveness stays free of Redis and the database, and unlimited.
    commands, queries = services.redis.commands, services.db.queries.count
    for _ in range(5):
        assert (await client.get("/v1/health", headers=sent_from(monitor))).status_code == 200
    assert (services.redis.commands, services.db.queries.count) == (commands, queries)


async def test_a_served_probe_costs_one_redis_command(app: FastAPI, client: AsyncClient) -> None:
    services = app.state.services
    before = services.redis.commands
    response = await client.get(READY, headers=sent_from(random_client_ip()))
    assert response.status_code == 200 and response.json()["database"] == "ok"
    assert services.redis.commands == before + 1  # the limiter's count is the Redis probe


async def test_429_and_503_are_in_the_openapi(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"200", "429", "503"} <= set(spec["paths"][READY]["get"]["responses"])
    assert set(spec["paths"]["/v1/health"]["get"]["responses"]) == {"200"}


async def test_redis_out_is_named_even_when_the_limiter_fails_closed(
    redis_prefix: str, clean_database: None
) -> None:
    """Fail-closed must not turn readiness into `rate_limiter_unavailable`: it names Redis."""
    settings = make_settings(
        "redis",
        redis_prefix,
        REDIS_URL="redis://127.0.0.1:1/0",
        RATE_LIMIT_FAILURE_MODE="closed",
        REDIS_TIMEOUT_MS=200,
    )
    app = create_app(settings)
    try:
        async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as client:
            response = await client.get(READY)
    finally:
        await app.state.services.close()
    assert response.status_code == 503
    assert response.json()["error"] == "not_ready"
    assert response.json()["unavailable"] == ["redis"]


# --- the connection cap -----------------------------------------------------------------------


class Gauge:
    """Database connections checked out right now, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def checkout(self, *_: Any) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def checkin(self, *_: Any) -> None:
        self.now -= 1


@pytest.fixture
async def capped(
    redis_prefix: str, raw_redis: Any, clean_database: None
) -> AsyncIterator[tuple[FastAPI, Gauge]]:
    """An app allowed CAP connections at once and keeping none between requests (DB_POOL_SIZE
    0): the semaphore in `Database.unit` is then the only thing bounding connections, which is
    exactly what a probe that bypasses it escapes."""
    settings: Settings = make_settings(
        "redis",
        redis_prefix,
        DB_MAX_CONNECTIONS=CAP,
        DB_POOL_SIZE=0,
        REDIS_TIMEOUT_MS=PATIENT_REDIS_TIMEOUT_MS,
    )
    app = create_app(settings)
    gauge = Gauge()
    engine = app.state.services.db.engine.sync_engine
    event.listen(engine, "checkout", gauge.checkout)
    event.listen(engine, "checkin", gauge.checkin)
    yield app, gauge
    await app.state.services.close()


async def test_a_probe_waits_for_the_connection_cap(capped: tuple[FastAPI, Gauge]) -> None:
    app, gauge = capped
    db = app.state.services.db
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        async with AsyncExitStack() as held:
            for _ in range(CAP):  # every permitted connection busy in a unit of work
                session = await held.enter_async_context(db.unit(read_only=True))
                await session.execute(sa.text("SELECT 1"))
            assert gauge.now == CAP
            probe = asyncio.create_task(client.get(READY, headers=sent_from(random_client_ip())))
            done, _ = await asyncio.wait({probe}, timeout=0.5)
            assert not done, "the probe opened a connection past DB_MAX_CONNECTIONS"
            assert gauge.peak == CAP
        response = await probe  # served once a unit ends
    assert response.status_code == 200, response.text
    assert gauge.peak == CAP


async def test_a_probe_flood_never_exceeds_the_cap(capped: tuple[FastAPI, Gauge]) -> None:
    app, gauge = capped
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        responses = await asyncio.gather(
            *(client.get(READY, headers=sent_from(random_client_ip())) for _ in range(30))
        )
    assert [r.status_code for r in responses] == [200] * 30
    assert gauge.peak <= CAP
