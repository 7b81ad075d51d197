"""Fixtures for billing through the real app: settlement buckets of 1 s that settle 5 s after
they close (so a test waits seconds, not minutes), the fake Stripe meter behind respx, and a
direct PostgreSQL connection for seeding and reading the ledgers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis
import respx

from app.core.config import Settings
from tests.conftest import database_url, make_settings
from tests.metering.paid import BUCKET_S, SETTLE_S, STRIPE_BASE
from tests.metering.test_flush import FakeMeter
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS
from tests.support.upstash_bridge import UpstashBridge


@pytest.fixture
def settings(
    backend: str, redis_prefix: str, bridge: UpstashBridge, raw_redis: aioredis.Redis
) -> Settings:
    return make_settings(
        backend,
        redis_prefix,
        bridge.url,
        STRIPE_SECRET_KEY="sk_test_settlement0123456789",
        STRIPE_API_BASE=STRIPE_BASE,
        USAGE_BUCKET_SECONDS=BUCKET_S,
        USAGE_SETTLE_AFTER_SECONDS=SETTLE_S,
        REDIS_TIMEOUT_MS=PATIENT_REDIS_TIMEOUT_MS,
    )


@pytest.fixture
def stripe_meter() -> Iterator[FakeMeter]:
    """Stripe's meter-event endpoint (the rest of Stripe is not routed: a call to it fails)."""
    fake = FakeMeter()
    with respx.mock(assert_all_called=False) as router:
        for host in ("127.0.0.1", "localhost"):  # Redis through the Upstash bridge is real
            router.route(host=host).pass_through()
        router.post(f"{STRIPE_BASE}/v1/billing/meter_events").mock(side_effect=fake)
        yield fake


@pytest.fixture
async def pg(clean_database: None) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url())
    yield conn
    await conn.close()
