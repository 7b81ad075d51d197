"""Billed means settled: what reaches Stripe is exactly the successful calls, whatever the timing.

The gate counts a call when it admits it and refunds it if the handler fails. These tests run real
traffic through the app (real PostgreSQL, real Redis, both Redis adapters) with the roll-up and the
flush racing it, and compare what the fake Stripe meter accepted with the true overage. Buckets
are 1 s wide and settle 5 s after they close, so a test waits seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.usage.period import next_paid_period
from tests.metering.paid import (
    BUCKET_S,
    CRON,
    SETTLE_S,
    add_period,
    flush,
    make_paid,
    now_s,
    settled_total,
    wait_until_settled,
)
from tests.metering.test_flush import FakeMeter
from tests.support.factories import key_headers, make_products, set_plan

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_failed_calls_are_never_billed_while_crons_race_the_traffic(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    """460 successful calls (10 beyond 450 included) and 1,500 concurrent 404s, with the roll-up
    and the flush every 0.3 s: Stripe gets exactly 10. Before settlement, a roll-up copied
    admitted-but-not-yet-refunded 404s and the flush's high-water mark kept them (Stripe 20)."""
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=450, requests_per_minute=100_000)
    start = now_s() - timedelta(days=1)
    account_id, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(30))
    headers = key_headers(key)
    gate = asyncio.Semaphore(48)

    async def call(path: str, expected: int) -> None:
        async with gate:
            response = await client.get(path, headers=headers)
        assert response.status_code == expected, response.text

    stop = asyncio.Event()

    async def crons() -> int:
        runs = 0
        while not stop.is_set():
            for job in ("rollup-usage", "flush-usage"):
                response = await client.get(f"/v1/internal/cron/{job}", headers=CRON)
                assert response.status_code == 200, response.text
            runs += 1
            await asyncio.sleep(0.3)
        return runs

    racing = asyncio.ensure_future(crons())
    calls = [call(f"/v1/products/{sku}", 200) for _ in range(460)]
    calls += [call(f"/v1/products/NOPE-{i}", 404) for i in range(1_500)]
    order = list(range(len(calls)))
    random.Random(7).shuffle(order)
    await asyncio.gather(*(calls[i] for i in order))
    stop.set()
    assert await racing >= 3  # the crons really ran during the traffic

    usage = (await client.get("/v1/usage", headers=headers)).json()
    assert usage["used"] == 460 and usage["overage"] == 10
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 10}
    assert await settled_total(pg, account_id) == 460
    final = (await client.get("/v1/usage", headers=headers)).json()
    assert final["used"] == 460 and final["provisional"] == 0


async def test_open_buckets_are_provisional_and_never_billed_until_they_settle(
    app: FastAPI,
    client: AsyncClient,
    pg: asyncpg.Connection,
    stripe_meter: FakeMeter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call in flight when the flush runs is shown as provisional and billed only once its
    bucket settled; a failed call answered before that is never billed."""
    from app.catalog import repository as catalog_repository

    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=2)
    start = now_s() - timedelta(days=1)
    _, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
    headers = key_headers(key)
    entered, release = asyncio.Event(), asyncio.Event()
    original = catalog_repository.get  # what a product read queries on a miss

    async def get(session: Any, wanted: str) -> Any:
        if wanted == "SLOW-THEN-404":
            entered.set()
            await release.wait()
        return await original(session, wanted)

    monkeypatch.setattr(catalog_repository, "get", get)
    for _ in range(3):
        assert (await client.get(f"/v1/products/{sku}", headers=headers)).status_code == 200
    slow = asyncio.ensure_future(client.get("/v1/products/SLOW-THEN-404", headers=headers))
    await asyncio.wait_for(entered.wait(), 10)

    assert (await flush(client))["planned"] == 0  # everything is still open to refunds
    usage = (await client.get("/v1/usage", headers=headers)).json()
    assert usage["used"] == 4 and usage["provisional"] == 4
    assert stripe_meter.totals() == {}

    release.set()
    assert (await slow).status_code == 404  # refunded inside its still-open bucket
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 1}
    usage = (await client.get("/v1/usage", headers=headers)).json()
    assert usage["used"] == 3 and usage["provisional"] == 0


async def test_a_flush_reports_every_call_settled_before_it_started(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    """The flush rolls up first: no waiting for a roll-up cron to have run."""
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=5)
    start = now_s() - timedelta(days=1)
    _, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
    for _ in range(8):
        response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        assert response.status_code == 200
    await asyncio.sleep(BUCKET_S + SETTLE_S + 1.5)
    result = await flush(client)  # no roll-up ran before it
    assert result["planned"] == 1 and result["sent"] == 1
    assert stripe_meter.totals() == {customer: 3}


async def test_calls_in_the_renewal_gap_count_in_the_next_period_and_are_billed(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    """The period ended, the renewal webhook has not arrived: the calls count into the
    subscription's next period (its end in the quota headers), and once the webhook records
    that period they are billed there, none lost to the calendar month."""
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=20)
    end = now_s() - timedelta(seconds=5)
    start = end - timedelta(days=31)
    account_id, key, customer = await make_paid(client, pg, start=start, end=end)
    nxt_start, nxt_end = next_paid_period(start, end)
    assert nxt_start == end
    for _ in range(50):
        response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        assert response.status_code == 200
    assert response.headers["x-quota-reset"] == str(int(nxt_end.timestamp()))
    assert response.headers["x-quota-remaining"] == "0"
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 50 and usage["overage"] == 30
    assert datetime.fromisoformat(usage["period_start"]) == nxt_start
    assert datetime.fromisoformat(usage["period_end"]) == nxt_end
    account = (await client.get("/v1/account", headers=key_headers(key))).json()
    assert datetime.fromisoformat(account["current_period"]["start"]) == nxt_start

    await add_period(pg, account_id, customer, nxt_start, nxt_end)  # the renewal webhook
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 30}
    event = next(iter(stripe_meter.events.values()))
    assert nxt_start.timestamp() <= int(event["timestamp"]) < nxt_end.timestamp()


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-01-31T10:00", "2026-02-28T10:00", "2026-03-31T10:00"),
        ("2026-02-28T10:00", "2026-03-31T10:00", "2026-04-30T10:00"),
        ("2027-12-15T03:04", "2028-01-15T03:04", "2028-02-15T03:04"),
        ("2028-01-29T00:00", "2028-02-29T00:00", "2028-03-29T00:00"),
        ("2026-01-31T00:00", "2027-01-31T00:00", "2028-01-31T00:00"),  # yearly
        ("2026-01-01T00:00", "2026-01-08T00:00", "2026-01-15T00:00"),  # weekly
        ("2026-01-28T00:00", "2026-02-04T00:00", "2026-02-11T00:00"),  # weekly, across a month
        ("2026-01-31T00:00", "2026-02-01T00:00", "2026-02-02T00:00"),  # daily, across a month
        ("2026-01-15T00:00", "2026-02-01T00:00", "2026-03-01T00:00"),  # prorated, anchor the 1st
        ("2026-11-06T04:05", "2026-12-07T04:05", "2027-01-07T04:05"),  # monthly, 31 days
    ],
)
def test_the_next_period_follows_the_billing_cycle(start: str, end: str, expected: str) -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert next_paid_period(at(start), at(end)) == (at(end), at(expected))
