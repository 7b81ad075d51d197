"""Helpers for billing tests through the real app: paid accounts, their periods, the crons."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from httpx import AsyncClient

from app.models import utcnow
from tests.conftest import CRON_SECRET
from tests.support.factories import key_headers, make_account, make_products, set_plan

CRON = {"Authorization": f"Bearer {CRON_SECRET}"}
STRIPE_BASE = "https://stripe.test"
BUCKET_S, SETTLE_S = 1, 5  # a refund never comes 5 s after its call, even on a loaded machine


async def make_paid(
    client: AsyncClient, pg: asyncpg.Connection, *, start: datetime, end: datetime
) -> tuple[str, str, str]:
    """A Pro account whose Stripe period is [start, end): (account id, key, customer)."""
    account_id, key = await make_account(client, plan="pro")
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    await pg.execute(
        "UPDATE accounts SET stripe_customer_id = $2, stripe_subscription_id = $3, "
        "subscription_status = 'active', current_period_start = $4, current_period_end = $5, "
        "policy_version = policy_version + 1 WHERE id = $1",
        account_id, customer, f"sub_{uuid.uuid4().hex[:14]}", start, end,
    )  # fmt: skip
    await add_period(pg, account_id, customer, start, end)
    return account_id, key, customer


async def add_period(
    pg: asyncpg.Connection, account_id: str, customer: str, start: datetime, end: datetime
) -> None:
    """A paid period as the webhook function records it."""
    await pg.execute(
        "INSERT INTO billing_periods (account_id, period_start, period_end, plan_code, "
        "stripe_customer_id, updated_at) VALUES ($1, $2, $3, 'pro', $4, now())",
        account_id, start, end, customer,
    )  # fmt: skip


async def settled_total(pg: asyncpg.Connection, account_id: str) -> int:
    value = await pg.fetchval(
        "SELECT coalesce(sum(settled), 0) FROM usage_settlements WHERE account_id = $1", account_id
    )
    return int(value)


async def run_cron(client: AsyncClient, job: str) -> dict[str, Any]:
    response = await client.get(f"/v1/internal/cron/{job}", headers=CRON)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def flush(client: AsyncClient) -> dict[str, Any]:
    return await run_cron(client, "flush-usage")


async def wait_until_settled(client: AsyncClient) -> None:
    """Past every open bucket's settle time, then one flush (it rolls up first)."""
    await asyncio.sleep(BUCKET_S + SETTLE_S + 1.5)
    await flush(client)


def now_s() -> datetime:
    return utcnow().replace(microsecond=0)


async def paid_with_calls(
    client: AsyncClient, pg: asyncpg.Connection, *, included: int, calls: int
) -> tuple[str, str, str, datetime]:
    """A Pro account (Pro includes `included` calls) in a current paid period that has made
    `calls` successful product reads: (account id, key, customer, period start)."""
    (sku,) = await make_products(client, 1, prefix=f"P{uuid.uuid4().hex[:6]}")
    await set_plan(client, "pro", included_calls=included)
    start = now_s() - timedelta(days=1)
    account_id, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(30))
    for _ in range(calls):
        response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        assert response.status_code == 200, response.text
    return account_id, key, customer, start
