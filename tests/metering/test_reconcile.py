"""The founder can see that billing adds up: `GET /v1/admin/billing/reconcile` and its cron."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.metering.paid import (
    flush,
    make_paid,
    now_s,
    paid_with_calls,
    run_cron,
    wait_until_settled,
)
from tests.metering.test_flush import FakeMeter
from tests.support.factories import ADMIN, key_headers, make_account, make_products, set_plan

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def reconcile(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/admin/billing/reconcile", headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


def only(report: dict[str, Any], account_id: str) -> dict[str, Any]:
    (row,) = [r for r in report["data"] if r["account_id"] == account_id]
    return dict(row)


async def test_every_stage_of_the_money_path_side_by_side(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=5)
    start = now_s() - timedelta(days=1)
    account_id, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(30))
    await make_account(client)  # a free account: not a paid period, not listed
    for _ in range(8):
        assert (
            await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        ).status_code == 200
    await client.get("/v1/products/NOPE", headers=key_headers(key))  # 404: refunded, not counted

    early = only(await reconcile(client), account_id)
    assert early["counted"] == 8 and early["provisional"] == 8
    assert early["settled"] == 0 and early["accepted"] == 0
    assert early["status"] == "ok" and early["problems"] == []  # all still open to refunds

    await wait_until_settled(client)
    report = await reconcile(client)
    assert report["periods"] == 1 and report["mismatches"] == 0 and report["live"] is True
    row = only(report, account_id)
    assert (row["counted"], row["provisional"], row["rolled_up"], row["settled"]) == (8, 0, 8, 8)
    assert (row["billable"], row["reported"], row["accepted"], row["difference"]) == (3, 3, 3, 0)
    assert row["status"] == "ok"
    assert stripe_meter.totals() == {customer: 3}


async def test_the_cron_tells_the_founder_when_stripe_has_more_than_was_settled(
    app: FastAPI,
    client: AsyncClient,
    pg: asyncpg.Connection,
    stripe_meter: FakeMeter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account_id, _, customer, start = await paid_with_calls(client, pg, included=1, calls=3)
    await wait_until_settled(client)
    with caplog.at_level(logging.ERROR, logger="agentmall.billing.reconcile"):
        quiet = await run_cron(client, "reconcile-billing")
    assert quiet["mismatches"] == 0 and not caplog.records

    # a fault: an event accepted by Stripe that no settled call explains (overbilling)
    await pg.execute(
        "INSERT INTO meter_events (identifier, account_id, stripe_customer_id, period_start, "
        "value, event_time, created_at, sent_at) VALUES ($1, $2, $3, $4, 5, now(), now(), now())",
        f"am_rogue_{uuid.uuid4().hex[:8]}", account_id, customer, start,
    )  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="agentmall.billing.reconcile"):
        loud = await run_cron(client, "reconcile-billing")
    assert loud["mismatches"] == 1
    row = only(loud, account_id)
    assert row["status"] == "mismatch" and row["accepted"] == 7 and row["billable"] == 2
    assert "overbilled" in row["problems"][0]
    assert any(account_id in r.getMessage() for r in caplog.records)


async def test_stripe_down_for_over_an_hour_is_a_mismatch(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    account_id, *_ = await paid_with_calls(client, pg, included=1, calls=3)
    stripe_meter.down = "500"
    await wait_until_settled(client)
    row = only(await reconcile(client), account_id)
    assert row["status"] == "catching_up" and row["reported"] == 2 and row["unsent"] == 2
    await pg.execute("UPDATE meter_events SET created_at = now() - interval '2 hours'")
    row = only(await reconcile(client), account_id)
    assert row["status"] == "mismatch" and row["difference"] == 2
    stripe_meter.down = None
    await flush(client)
    row = only(await reconcile(client), account_id)
    assert row["status"] == "ok" and row["accepted"] == 2
