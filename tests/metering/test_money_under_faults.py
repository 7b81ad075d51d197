"""The money through faults: Stripe ends up with exactly every account's true overage.

20 Pro accounts, 2,000 calls (a third of them failing with 404), sent to two API instances: this
test's app and a separate API process. The roll-up and the flush race the traffic; Stripe goes
down halfway through and stays down while the overage settles; the API process is killed with
SIGKILL in the middle of a flush, just after Stripe accepted one of its events; three accounts
are in the renewal gap (their period ended, the renewal webhook has not arrived). Afterwards, the
meter holds exactly each account's overage (successful calls beyond its included calls), and the
founder's reconciliation shows every period in step.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from app.usage.period import next_paid_period
from tests.conftest import make_settings
from tests.metering.paid import (
    BUCKET_S,
    CRON,
    SETTLE_S,
    add_period,
    flush,
    make_paid,
    now_s,
    run_cron,
)
from tests.metering.test_flush import Crash, FakeMeter
from tests.support.api_process import ApiProcess
from tests.support.factories import ADMIN, key_headers, make_products, set_plan
from tests.support.http_stand_in import HttpStandIn
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS
from tests.support.upstash_bridge import UpstashBridge

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

ACCOUNTS, IN_GAP = 20, 3
SUCCESSES, FAILURES, INCLUDED = 70, 30, 40


@pytest.fixture
def backend() -> str:
    """This test's app talks to Redis through Upstash's REST protocol, the other process by URL."""
    return "upstash"


@pytest.fixture
def settings(
    redis_prefix: str,
    bridge: UpstashBridge,
    raw_redis: aioredis.Redis,
    stripe_server: tuple[FakeMeter, str, list[Any]],
) -> Settings:
    return make_settings(
        "upstash",
        redis_prefix,
        bridge.url,
        STRIPE_SECRET_KEY="sk_test_faults0123456789",
        STRIPE_API_BASE=stripe_server[1],
        USAGE_BUCKET_SECONDS=BUCKET_S,
        USAGE_SETTLE_AFTER_SECONDS=SETTLE_S,
        REDIS_TIMEOUT_MS=PATIENT_REDIS_TIMEOUT_MS,
    )


@pytest.fixture
async def stripe_server() -> AsyncIterator[tuple[FakeMeter, str, list[ApiProcess]]]:
    """The fake Stripe meter over HTTP; when told to crash on an event, it SIGKILLs the API
    process that sent it (after accepting it: the answer never reaches the flush)."""
    meter = FakeMeter()
    victims: list[ApiProcess] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        try:
            return await meter(request)
        except Crash:
            for victim in victims:
                victim.kill()
            meter.crash_on_event = None
            await asyncio.sleep(0.5)  # the caller is gone
            return httpx.Response(500)

    async with HttpStandIn(handler) as url:
        yield meter, url, victims


async def test_stripe_totals_equal_the_true_overage_through_every_fault(
    app: FastAPI,
    client: AsyncClient,
    settings: Settings,
    pg: asyncpg.Connection,
    stripe_server: tuple[FakeMeter, str, list[ApiProcess]],
) -> None:
    meter, stripe_url, victims = stripe_server
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=INCLUDED, requests_per_minute=100_000)
    accounts: list[tuple[str, str, str]] = []
    gaps: list[tuple[str, str, Any]] = []
    for index in range(ACCOUNTS):
        if index < IN_GAP:  # the period ended seconds ago; the renewal webhook is late
            end = now_s() - timedelta(seconds=5)
            start = end - timedelta(days=31)
            account = await make_paid(client, pg, start=start, end=end)
            gaps.append((account[0], account[2], next_paid_period(start, end)))
        else:
            start = now_s() - timedelta(days=2)
            account = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
        accounts.append(account)

    other = ApiProcess(settings, stripe_url=stripe_url)
    await other.start()
    victims.append(other)
    try:
        await _traffic(client, other, accounts, sku, meter)
        await asyncio.sleep(settings.USAGE_BUCKET_SECONDS + settings.USAGE_SETTLE_AFTER_SECONDS + 2)
        stuck = await flush(client)  # everything settles and is planned; Stripe is still down
        assert stuck["failed"] and stuck["pending"] > 3

        meter.down = None  # Stripe is back: the other process flushes, and dies mid-way
        meter.crash_on_event = len(meter.events) + 2
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as direct:
            with pytest.raises(httpx.TransportError):
                await direct.get("/v1/internal/cron/flush-usage", headers=CRON)
        assert other.process is not None and other.process.wait(10) == -signal.SIGKILL
    finally:
        other.stop()

    after_crash = await flush(client)
    assert after_crash["failed"] is None and after_crash["pending"] == 0
    assert meter.duplicates >= 1  # the event accepted as the process died was sent again
    for account_id, customer, (start, end) in gaps:  # the renewal webhooks arrive
        await add_period(pg, account_id, customer, start, end)
    await flush(client)

    overage = SUCCESSES - INCLUDED
    assert meter.totals() == {customer: overage for _, _, customer in accounts}
    assert meter.max_in_flight == 1  # one Stripe call per customer at a time
    report = (await client.get("/v1/admin/billing/reconcile", headers=ADMIN)).json()
    assert report["mismatches"] == 0 and all(row["status"] == "ok" for row in report["data"])
    accepted: dict[str, int] = {}
    for row in report["data"]:
        accepted[row["account_id"]] = accepted.get(row["account_id"], 0) + row["accepted"]
    assert accepted == {account_id: overage for account_id, _, _ in accounts}


async def _traffic(
    client: AsyncClient,
    other: ApiProcess,
    accounts: list[tuple[str, str, str]],
    sku: str,
    meter: FakeMeter,
) -> None:
    """Every account's calls, shuffled over both instances, with the crons racing; Stripe goes
    down halfway and stays down."""
    calls = [
        (key, f"/v1/products/{sku}" if ok else f"/v1/products/NOPE-{n}", 200 if ok else 404)
        for _, key, _ in accounts
        for n, ok in enumerate([True] * SUCCESSES + [False] * FAILURES)
    ]
    random.Random(17).shuffle(calls)
    limit, done = asyncio.Semaphore(32), 0
    stop = asyncio.Event()

    async def crons() -> None:
        while not stop.is_set():
            await run_cron(client, "rollup-usage")
            await run_cron(client, "flush-usage")
            await asyncio.sleep(0.3)

    async with httpx.AsyncClient(base_url=other.url, timeout=30) as remote:

        async def call(index: int, key: str, path: str, expected: int) -> None:
            nonlocal done
            target = remote if index % 2 else client
            async with limit:
                response = await target.get(path, headers=key_headers(key))
            assert response.status_code == expected, response.text
            done += 1
            if done == len(calls) // 2:
                meter.down = "500"

        racing = asyncio.ensure_future(crons())
        try:
            await asyncio.gather(*(call(i, *c) for i, c in enumerate(calls)))
        finally:
            stop.set()
            await racing
