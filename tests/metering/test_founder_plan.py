"""A founder-assigned plan stands for billing too: the recorded paid period follows it at once."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.metering.paid import make_paid, now_s, wait_until_settled
from tests.metering.test_flush import FakeMeter
from tests.support.factories import key_headers, make_products, set_account_plan, set_plan

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_a_contract_plan_assigned_mid_period_is_never_billed_pro_overage(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=2)
    start = now_s() - timedelta(days=1)
    account_id, key, _ = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
    await set_account_plan(client, account_id, "enterprise")  # a contract, billed by invoice
    for _ in range(5):
        response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
        assert response.status_code == 200
    await wait_until_settled(client)
    plan = await pg.fetchval(
        "SELECT plan_code FROM billing_periods WHERE account_id = $1", account_id
    )
    assert plan == "enterprise"
    assert stripe_meter.totals() == {}
