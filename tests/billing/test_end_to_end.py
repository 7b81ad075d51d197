"""A developer's whole billing life, through the real apps, with Stripe answered by respx in
Stripe's own shapes and webhooks signed by Stripe's own signing code."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import respx
from fastapi import FastAPI
from httpx import AsyncClient, Response

from tests.billing.conftest import BUCKET_S, SETTLE_S, STRIPE_BASE, FakeSubscriptions, deliver
from tests.conftest import CRON_SECRET
from tests.support import stripe_objects as so
from tests.support.factories import key_headers, make_account, make_products, set_plan

CRON = {"Authorization": f"Bearer {CRON_SECRET}"}


async def test_free_to_pro_to_past_due_to_free(
    app: FastAPI,
    client: AsyncClient,
    hooks: AsyncClient,
    bootstrapped: None,
    stripe_api: respx.MockRouter,
    subscriptions: FakeSubscriptions,
) -> None:
    skus = await make_products(client, 3)
    await set_plan(client, "free", included_calls=2)
    await set_plan(client, "pro", included_calls=4)
    account_id, key = await make_account(client)
    headers = key_headers(key)

    # free: the quota is a hard gate, and the refusal carries a one-click upgrade link
    for _ in range(2):
        assert (await client.get(f"/v1/products/{skus[0]}", headers=headers)).status_code == 200
    refused = await client.get(f"/v1/products/{skus[0]}", headers=headers)
    assert refused.status_code == 429 and refused.json()["error"] == "quota_exceeded"

    customer = so.customer(email="dev@example.com")
    stripe_api.post(f"{STRIPE_BASE}/v1/customers").mock(return_value=Response(200, json=customer))
    checkout = so.checkout_session(url="https://checkout.stripe.test/c/pay/cs_e2e")
    sessions = stripe_api.post(f"{STRIPE_BASE}/v1/checkout/sessions").mock(
        return_value=Response(200, json=checkout)
    )
    link = refused.json()["upgrade_url"].replace("https://api.agentmall.test", "")
    followed = await client.get(link)
    assert followed.status_code == 303
    assert followed.headers["location"] == "https://checkout.stripe.test/c/pay/cs_e2e"
    assert parse_qs(sessions.calls[0].request.content.decode())["customer"] == [customer["id"]]

    # the person pays: Stripe sends the events (the subscription first, as it may)
    sub = subscriptions.put(customer=customer["id"], account_id=account_id)
    await _deliver(hooks, so.event("customer.subscription.created", sub))
    completed = {**checkout, "client_reference_id": account_id, "customer": customer["id"]}
    completed["subscription"] = sub["id"]
    await _deliver(hooks, so.event("checkout.session.completed", completed))

    # the same key, on its very next call: Pro limits and features, the Stripe period
    bulk = await client.post("/v1/products/bulk", json={"skus": skus}, headers=headers)
    assert bulk.status_code == 200
    assert bulk.headers["x-quota-limit"] == "4" and bulk.headers["x-ratelimit-limit"] == "120"
    for _ in range(5):  # beyond Pro's 4 included calls: served (soft gate), billed as overage
        assert (await client.get(f"/v1/products/{skus[1]}", headers=headers)).status_code == 200
    usage = (await client.get("/v1/usage", headers=headers)).json()
    assert usage["used"] == 6 and usage["overage"] == 2 and usage["plan"] == "pro"

    # the flush reports exactly the overage to the meter, once
    sent: list[dict[str, list[str]]] = []

    def meter_event(request: Any) -> Response:
        sent.append(parse_qs(request.content.decode()))
        return Response(200, json=so.meter_event())

    stripe_api.post(f"{STRIPE_BASE}/v1/billing/meter_events").mock(side_effect=meter_event)
    assert (await client.get("/v1/internal/cron/rollup-usage", headers=CRON)).status_code == 200
    assert (await client.get("/v1/internal/cron/flush-usage", headers=CRON)).json()["planned"] == 0
    assert sent == []  # the calls are still open to refunds: nothing billed yet
    await asyncio.sleep(BUCKET_S + SETTLE_S + 1)  # their admission buckets settle
    for _ in range(2):
        flushed = await client.get("/v1/internal/cron/flush-usage", headers=CRON)
        assert flushed.status_code == 200, flushed.text
    assert len(sent) == 1
    assert sent[0]["payload[value]"] == ["2"]
    assert sent[0]["payload[stripe_customer_id]"] == [customer["id"]]
    assert sent[0]["event_name"] == ["agentmall_api_call"]

    # a failed payment: 402 with the portal; paid again: 200
    subscriptions.put(
        customer=customer["id"], account_id=account_id, status="past_due", sid=sub["id"]
    )
    invoice = so.invoice(customer=customer["id"], subscription=sub["id"])
    await _deliver(hooks, so.event("invoice.payment_failed", invoice))
    blocked = await client.get(f"/v1/products/{skus[2]}", headers=headers)
    assert blocked.status_code == 402 and blocked.json()["error"] == "payment_required"
    portal = so.portal_session(url="https://billing.stripe.test/p/e2e")
    stripe_api.post(f"{STRIPE_BASE}/v1/billing_portal/sessions").mock(
        return_value=Response(200, json=portal)
    )
    manage = blocked.json()["billing_portal_url"].replace("https://api.agentmall.test", "")
    followed = await client.get(manage)  # the human fixes the card, with no API key
    assert followed.status_code == 303
    assert followed.headers["location"] == "https://billing.stripe.test/p/e2e"
    subscriptions.put(customer=customer["id"], account_id=account_id, sid=sub["id"])
    await _deliver(hooks, so.event("invoice.paid", invoice))
    assert (await client.get(f"/v1/products/{skus[2]}", headers=headers)).status_code == 200

    # cancelled: back to free limits at once
    ended = subscriptions.put(
        customer=customer["id"], account_id=account_id, status="canceled", sid=sub["id"]
    )
    await _deliver(hooks, so.event("customer.subscription.deleted", ended))
    back = await client.post("/v1/products/bulk", json={"skus": skus}, headers=headers)
    assert back.status_code == 403 and back.json()["error"] == "feature_not_in_plan"
    response = await client.get(f"/v1/products/{skus[0]}", headers=headers)
    assert response.headers["x-quota-limit"] == "2"


async def _deliver(hooks: AsyncClient, event: dict[str, Any]) -> None:
    response = await deliver(hooks, event)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied", response.json()
