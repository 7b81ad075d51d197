"""The Stripe webhook function: verified on the raw body, applied exactly once, order-safe."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.billing.webhook_app import create_webhook_app
from app.core.config import Settings
from tests.billing.conftest import PERIOD_START, FakeSubscriptions, deliver, signed
from tests.conftest import database_url
from tests.support import stripe_objects as so
from tests.support.factories import key_headers, make_account, make_products


async def _account(account_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url())
    row = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
    await conn.close()
    assert row is not None
    return dict(row)


async def _events() -> int:
    conn = await asyncpg.connect(database_url())
    count = await conn.fetchval("SELECT count(*) FROM stripe_events")
    await conn.close()
    return int(count)


def _sub_event(kind: str, sub: dict[str, Any], **over: Any) -> dict[str, Any]:
    return so.event(f"customer.subscription.{kind}", sub, **over)


async def test_bad_signatures_change_nothing(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    account_id, _ = await make_account(client)
    sub = subscriptions.put(customer="cus_1", account_id=account_id)
    event = _sub_event("created", sub)
    body, headers = signed(event)
    cases = {
        "wrong secret": signed(event, secret="whsec_someone_else_000000")[1],
        "stale": signed(event, timestamp=int(time.time()) - 301)[1],
        "missing": {"Content-Type": "application/json"},
        "garbage": {"Stripe-Signature": "t=1,v1=abc"},
    }
    for name, bad_headers in cases.items():
        response = await hooks.post("/v1/stripe/webhook", content=body, headers=bad_headers)
        assert response.status_code == 400, name
        assert response.json()["error"] == "invalid_signature"
    reserialized = json.dumps(json.loads(body), indent=2).encode()  # same JSON, other bytes
    response = await hooks.post("/v1/stripe/webhook", content=reserialized, headers=headers)
    assert response.status_code == 400
    assert await _events() == 0
    assert (await _account(account_id))["plan_code"] == "free"
    response = await hooks.post("/v1/stripe/webhook", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["outcome"] == "applied"


async def test_without_a_secret_the_function_accepts_nothing(
    settings: Settings, clean_database: None, subscriptions: FakeSubscriptions
) -> None:
    app = create_webhook_app(settings.model_copy(update={"STRIPE_WEBHOOK_SECRET": None}))
    async with AsyncClient(transport=ASGITransport(app), base_url="http://h") as hooks:
        body, headers = signed(so.event("invoice.paid", so.invoice()))
        response = await hooks.post("/v1/stripe/webhook", content=body, headers=headers)
    await app.state.redis.close()
    await app.state.db.dispose()
    assert response.status_code == 503
    assert response.json()["error"] == "billing_not_configured"


async def test_a_redelivered_event_has_one_effect(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    account_id, _ = await make_account(client)
    before = (await _account(account_id))["policy_version"]
    event = _sub_event("created", subscriptions.put(customer="cus_1", account_id=account_id))
    outcomes = [(await deliver(hooks, event)).json()["outcome"] for _ in range(3)]
    assert outcomes == ["applied", "duplicate", "duplicate"]
    after = await _account(account_id)
    assert after["plan_code"] == "pro" and after["policy_version"] == before + 1
    assert await _events() == 1


async def test_unknown_events_are_acknowledged_and_ignored(hooks: AsyncClient) -> None:
    response = await deliver(hooks, so.event("customer.created", so.customer()))
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"


async def test_an_older_event_delivered_late_never_rolls_state_back(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    account_id, _ = await make_account(client)
    created = subscriptions.put(customer="cus_1", account_id=account_id, status="incomplete")
    created_event = _sub_event("created", created)
    now_active = subscriptions.put(
        customer="cus_1", account_id=account_id, status="active", sid=created["id"]
    )
    updated_event = _sub_event("updated", now_active)
    assert (await deliver(hooks, updated_event)).json()["outcome"] == "applied"
    assert (await deliver(hooks, created_event)).json()["outcome"] == "applied"  # late, older
    account = await _account(account_id)
    assert account["plan_code"] == "pro" and account["subscription_status"] == "active"


async def test_concurrent_deliveries_apply_each_event_once(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    accounts = [(await make_account(client))[0] for _ in range(10)]
    subs = [subscriptions.put(customer=f"cus_{i}", account_id=a) for i, a in enumerate(accounts)]
    events = [_sub_event("updated", subs[i % 10]) for i in range(50)]  # 50 distinct event ids
    before = {a: (await _account(a))["policy_version"] for a in accounts}
    deliveries = [events[i % 50] for i in range(1000)]  # each delivered 20 times, all at once
    responses = await asyncio.gather(*(deliver(hooks, e) for e in deliveries))
    assert {r.status_code for r in responses} == {200}
    outcomes = [r.json()["outcome"] for r in responses]
    assert outcomes.count("applied") == 50 and outcomes.count("duplicate") == 950
    assert await _events() == 50
    bumps = sum([(await _account(a))["policy_version"] - before[a] for a in accounts])
    assert bumps == 50


async def test_payment_failure_and_recovery_reach_the_gate_at_once(
    app: FastAPI,
    client: AsyncClient,
    hooks: AsyncClient,
    subscriptions: FakeSubscriptions,
) -> None:
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    assert (await client.get(f"/v1/products/{sku}", headers=key_headers(key))).status_code == 200
    sub = subscriptions.put(customer="cus_9", account_id=account_id)
    await deliver(hooks, _sub_event("created", sub))
    bulk = await client.post("/v1/products/bulk", json={"skus": [sku]}, headers=key_headers(key))
    assert bulk.status_code == 200 and bulk.headers["x-quota-limit"] == "50000"
    period_end = PERIOD_START + 30 * 86_400
    assert bulk.headers["x-quota-reset"] == str(period_end)  # the Stripe period, not the month
    subscriptions.put(customer="cus_9", account_id=account_id, status="past_due", sid=sub["id"])
    failed = so.invoice(customer="cus_9", subscription=sub["id"])
    await deliver(hooks, so.event("invoice.payment_failed", failed))
    response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
    assert response.status_code == 402
    portal_link = response.json()["billing_portal_url"]
    assert "/v1/billing/manage?token=" in portal_link
    subscriptions.put(customer="cus_9", account_id=account_id, status="active", sid=sub["id"])
    await deliver(
        hooks, so.event("invoice.paid", so.invoice(customer="cus_9", subscription=sub["id"]))
    )
    assert (await client.get(f"/v1/products/{sku}", headers=key_headers(key))).status_code == 200
    subscriptions.put(customer="cus_9", account_id=account_id, status="canceled", sid=sub["id"])
    await deliver(hooks, _sub_event("deleted", subscriptions.current[sub["id"]]))
    response = await client.post(
        "/v1/products/bulk", json={"skus": [sku]}, headers=key_headers(key)
    )
    assert response.status_code == 403  # back on free: no bulk
    account = await _account(account_id)
    assert account["plan_code"] == "free" and account["current_period_start"] is None


@pytest.mark.parametrize("where", ["subscription", "parent"])
async def test_invoices_find_their_subscription_in_any_api_version(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions, where: str
) -> None:
    account_id, _ = await make_account(client)
    sub = subscriptions.put(customer="cus_7", account_id=account_id)
    await deliver(hooks, _sub_event("created", sub))
    subscriptions.put(customer="cus_7", account_id=account_id, status="past_due", sid=sub["id"])
    invoice = so.invoice(customer="cus_7", subscription=None)
    if where == "subscription":
        invoice["subscription"] = sub["id"]
    else:
        invoice["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"metadata": {}, "subscription": sub["id"]},
        }
    response = await deliver(hooks, so.event("invoice.payment_failed", invoice))
    assert response.json()["outcome"] == "applied"
    assert (await _account(account_id))["subscription_status"] == "past_due"


async def test_the_local_api_app_serves_the_webhook_route_too(
    client: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    """`stripe listen --forward-to localhost:8000/...` works against scripts/dev.sh."""
    account_id, _ = await make_account(client)
    event = _sub_event("created", subscriptions.put(customer="cus_3", account_id=account_id))
    assert (await deliver(client, event)).json()["outcome"] == "applied"
    assert (await deliver(client, event)).json()["outcome"] == "duplicate"
    assert (await _account(account_id))["plan_code"] == "pro"


async def test_an_event_for_a_subscription_stripe_does_not_know_changes_nothing(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    account_id, _ = await make_account(client)
    ghost = so.subscription(customer="cus_0", metadata={"account_id": account_id})
    response = await deliver(hooks, _sub_event("updated", ghost))
    assert response.status_code == 200
    assert response.json()["outcome"] == "subscription_missing"
    assert (await _account(account_id))["plan_code"] == "free"


async def test_a_non_ascii_signature_is_a_400_not_a_500(hooks: AsyncClient) -> None:
    """Review finding: Stripe's verifier raised TypeError on a non-ASCII header."""
    body, _ = signed(so.event("invoice.paid", so.invoice()))
    headers = {"Stripe-Signature": "t=1,v1=\xe9".encode("latin-1").decode("latin-1")}
    response = await hooks.post(
        "/v1/stripe/webhook",
        content=body,
        headers={k: v.encode("latin-1") for k, v in headers.items()},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_signature"


async def test_a_contract_plan_set_by_the_founder_survives_an_old_subscription_event(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    """Review finding: a late event for a cancelled subscription moved enterprise to free."""
    from tests.support.factories import set_account_plan

    account_id, _ = await make_account(client)
    sub = subscriptions.put(customer="cus_e", account_id=account_id)
    await deliver(hooks, _sub_event("created", sub))
    ended = subscriptions.put(
        customer="cus_e", account_id=account_id, status="canceled", sid=sub["id"]
    )
    await deliver(hooks, _sub_event("deleted", ended))
    await set_account_plan(client, account_id, "enterprise")
    invoice = so.invoice(customer="cus_e", subscription=sub["id"])
    assert (await deliver(hooks, so.event("invoice.paid", invoice))).status_code == 200
    assert (await _account(account_id))["plan_code"] == "enterprise"
