"""Test fixtures: real PostgreSQL, real Redis, the real Upstash SDK through a local REST bridge.

The suite never skips for a missing service: `scripts/test.sh` starts PostgreSQL and Redis, and a
test session that cannot reach them fails loudly here.

Isolation: one database for the session (migrated with Alembic, as in production), emptied between
tests except the seeded plans, which are restored; every test gets its own Redis key prefix, so
nothing is flushed and parallel runs cannot collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.support.settings import (
    PATIENT_REDIS_TIMEOUT_MS,
    TEST_PG_ADMIN_URL,
    TEST_REDIS_URL,
    local_settings,
)
from tests.support.upstash_bridge import UpstashBridge

PG_ADMIN_URL = TEST_PG_ADMIN_URL
PG_DATABASE = os.environ.get("TEST_PG_DATABASE", "agentmall_test")
REDIS_URL = TEST_REDIS_URL
ADMIN_KEY = "admin-test-key-0123456789abcdef"
CRON_SECRET = "cron-test-secret-0123456789"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def database_url() -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{PG_DATABASE}"


@pytest.fixture(scope="session")
async def migrated_database() -> AsyncIterator[list[dict[str, Any]]]:
    """A fresh database migrated to head; yields the seeded plans so tests can restore them."""
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL)
    except OSError as exc:  # pragma: no cover - the environment, not the code
        pytest.exit(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}", returncode=3)
    await admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    await admin.close()
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = Settings(DATABASE_URL=database_url()).DATABASE_URL
    config.attributes["configure_logger"] = False
    import asyncio

    await asyncio.to_thread(command.upgrade, config, "head")
    conn = await asyncpg.connect(database_url())
    plans = [dict(r) for r in await conn.fetch("SELECT * FROM plans")]
    await conn.close()
    yield plans


@pytest.fixture
async def clean_database(migrated_database: list[dict[str, Any]]) -> AsyncIterator[None]:
    """Empty every table and put the seeded plans back as they were."""
    conn = await asyncpg.connect(database_url())
    await conn.execute(
        "TRUNCATE stripe_events, billing_settings, billing_periods, meter_reports, meter_events, "
        "usage_notices, degraded_calls, usage_rollups, usage_settlements, api_keys, inventory, "
        "products, accounts, "
        "inventory_changes, idempotency_keys, webhook_attempts, webhook_deliveries, "
        "webhook_events, webhook_endpoints, search_words, search_attributes, checkout_sessions, "
        "billing_incidents, portal_sessions, portal_login_links "
        "RESTART IDENTITY CASCADE"
    )
    await conn.execute("DELETE FROM plans")
    for plan in migrated_database:
        columns = ", ".join(plan)
        params = ", ".join(f"${i}" for i in range(1, len(plan) + 1))
        await conn.execute(f"INSERT INTO plans ({columns}) VALUES ({params})", *plan.values())
    await conn.close()
    yield


@pytest.fixture(scope="session")
def bridge() -> Iterator[UpstashBridge]:
    """The Upstash REST protocol, served over real HTTP, in front of the real Redis."""
    with UpstashBridge(REDIS_URL, token=UPSTASH_TOKEN) as b:
        yield b


@pytest.fixture
def redis_prefix() -> str:
    return f"t:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def raw_redis(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A direct connection to the test Redis; deletes this test's keys afterwards."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True, protocol=2)
    try:
        await client.ping()
    except OSError as exc:  # pragma: no cover
        pytest.exit(f"Redis unreachable at {REDIS_URL}: {exc}", returncode=3)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{redis_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


UPSTASH_TOKEN = "upstash-test-token-0123456789"


def make_settings(
    backend: str, prefix: str, bridge_url: str | None = None, **extra: Any
) -> Settings:
    return local_settings(
        backend,
        prefix=prefix,
        database_url=database_url(),
        redis_url=REDIS_URL,
        admin_key=ADMIN_KEY,
        cron_secret=CRON_SECRET,
        bridge_url=bridge_url,
        upstash_token=UPSTASH_TOKEN,
        **extra,
    )


@pytest.fixture(params=["redis", "upstash"])
def backend(request: pytest.FixtureRequest) -> str:
    """Gate tests run on both production adapters: Redis by URL and Upstash REST (real SDK)."""
    return str(request.param)


@pytest.fixture
def settings(
    backend: str, redis_prefix: str, bridge: UpstashBridge, raw_redis: aioredis.Redis
) -> Settings:
    """Patient with Redis (tests/support/settings.py says why): a test that means to see Redis
    time out sets its own REDIS_TIMEOUT_MS."""
    return make_settings(
        backend, redis_prefix, bridge.url, REDIS_TIMEOUT_MS=PATIENT_REDIS_TIMEOUT_MS
    )


@pytest.fixture
async def app(settings: Settings, clean_database: None) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.services.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"X-API-Key": ADMIN_KEY}
