"""One subscription per account (issue 17, item 4) and contracts that survive Stripe (item 6),
through the webhook function with Stripe answered by respx in Stripe's shapes."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest
import respx
from fastapi import FastAPI
from httpx import AsyncClient

from tests.billing.conftest import FakeSubscriptions, deliver
from tests.billing.stripe_fakes import FakeRefunds
from tests.conftest import database_url
from tests.support import stripe_objects as so
from tests.support.factories import ADMIN, make_account, set_account_plan


@pytest.fixture
def refunds(stripe_api: respx.MockRouter, subscriptions: FakeSubscriptions) -> FakeRefunds:
    return FakeRefunds(stripe_api, subscriptions)


async def _row(sql: str, *args: Any) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url())
    row = await conn.fetchrow(sql, *args)
    await conn.close()
    assert row is not None, sql
    return dict(row)


async def _count(sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(database_url())
    value = await conn.fetchval(sql, *args)
    await conn.close()
    return int(value)


def _two_paid(
    subscriptions: FakeSubscriptions, refunds: FakeRefunds, account_id: str, customer: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Two Pro subscriptions of one customer, both paid: (older, newer, newer's PaymentIntent)."""
    older = subscriptions.put(customer=customer, account_id=account_id)
    newer = subscriptions.put(customer=customer, account_id=account_id)
    older["created"], newer["created"] = 1_700_000_000, 1_700_000_060
    refunds.paid_invoice(older)
    return older, newer, refunds.paid_invoice(newer)


async def test_a_second_paid_subscription_is_cancelled_and_refunded_once(
    client: AsyncClient,
    hooks: AsyncClient,
    subscriptions: FakeSubscriptions,
    refunds: FakeRefunds,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account_id, _ = await make_account(client)
    older, newer, intent = _two_paid(subscriptions, refunds, account_id, "cus_twice")
    with caplog.at_level(logging.WARNING, logger="agentmall.billing"):
        for sub in (older, newer):  # either event finds both in Stripe
            response = await deliver(hooks, so.event("customer.subscription.created", sub))
            assert response.status_code == 200 and response.json()["outcome"] == "applied"
    # the newer one is cancelled at once and its payment refunded, keyed by its id
    assert refunds.cancelled == [newer["id"]]
    assert refunds.keys["cancel"] == [f"agentmall-cancel-duplicate-{newer['id']}"]
    [refund] = refunds.refunded
    assert refund["payment_intent"] == intent and refund["amount"] == 4900
    assert refunds.keys["refund"] == [f"agentmall-refund-duplicate-{newer['id']}-{intent}"]
    assert any(
        r.levelno == logging.WARNING and newer["id"] in r.getMessage() for r in caplog.records
    )
    account = await _row("SELECT * FROM accounts WHERE id = $1", account_id)
    assert account["plan_code"] == "pro" and account["stripe_subscription_id"] == older["id"]
    # the rest of the newer one's events (and redeliveries) change nothing and call Stripe no more
    for kind in ("customer.subscription.updated", "customer.subscription.deleted"):
        assert (await deliver(hooks, so.event(kind, newer))).status_code == 200
    paid = so.invoice(customer="cus_twice", subscription=newer["id"])
    assert (await deliver(hooks, so.event("invoice.paid", paid))).status_code == 200
    assert len(refunds.keys["cancel"]) == 1 and len(refunds.keys["refund"]) == 1
    account = await _row("SELECT * FROM accounts WHERE id = $1", account_id)
    assert account["plan_code"] == "pro" and account["stripe_subscription_id"] == older["id"]
    # the founder sees it
    listed = await client.get("/v1/admin/billing/incidents", headers=ADMIN)
    assert listed.status_code == 200
    [incident] = listed.json()["data"]
    assert incident["kind"] == "duplicate_subscription" and incident["account_id"] == account_id
    assert incident["subscription_id"] == newer["id"]
    assert incident["kept_subscription_id"] == older["id"]
    assert incident["cancel_status"] == "cancelled" and incident["refund_status"] == "refunded"
    assert incident["refunded_amount"] == 4900 and incident["currency"] == "usd"
    assert incident["refund_ids"] == [refund["id"]]
    # ending the kept one ends Pro
    subscriptions.put(
        customer="cus_twice", account_id=account_id, status="canceled", sid=older["id"]
    )
    await deliver(
        hooks, so.event("customer.subscription.deleted", subscriptions.current[older["id"]])
    )
    assert (await _row("SELECT plan_code FROM accounts WHERE id = $1", account_id)) == {
        "plan_code": "free"
    }


async def test_whichever_arrives_first_the_older_subscription_is_kept(
    client: AsyncClient,
    hooks: AsyncClient,
    subscriptions: FakeSubscriptions,
    refunds: FakeRefunds,
) -> None:
    account_id, _ = await make_account(client)
    older, newer, _ = _two_paid(subscriptions, refunds, account_id, "cus_race")
    completed = so.checkout_session(
        client_reference_id=account_id, customer="cus_race", subscription=newer["id"]
    )
    assert (await deliver(hooks, so.event("checkout.session.completed", completed))).json()[
        "outcome"
    ] == "applied"
    assert refunds.cancelled == [newer["id"]] and len(refunds.refunded) == 1
    account = await _row("SELECT * FROM accounts WHERE id = $1", account_id)
    assert account["stripe_subscription_id"] == older["id"] and account["plan_code"] == "pro"
    assert (await deliver(hooks, so.event("customer.subscription.created", older))).json()[
        "outcome"
    ] == "applied"
    assert refunds.cancelled == [newer["id"]] and len(refunds.refunded) == 1


async def test_stripe_failing_mid_way_is_retried_without_a_second_cancel_or_refund(
    client: AsyncClient,
    hooks: AsyncClient,
    subscriptions: FakeSubscriptions,
    refunds: FakeRefunds,
) -> None:
    account_id, _ = await make_account(client)
    older, newer, intent = _two_paid(subscriptions, refunds, account_id, "cus_retry")
    refunds.fail_refunds = 1  # Stripe fails between the cancel and the refund
    event = so.event("customer.subscription.created", older)
    failed = await deliver(hooks, event)
    assert failed.status_code >= 500 and failed.json()["error"] == "stripe_unavailable"
    assert refunds.cancelled == [newer["id"]] and refunds.refunded == []
    assert await _count("SELECT count(*) FROM billing_incidents") == 0
    assert await _count("SELECT count(*) FROM stripe_events WHERE id = $1", event["id"]) == 0
    retried = await deliver(hooks, event)  # Stripe retries the same event
    assert retried.status_code == 200 and retried.json()["outcome"] == "applied"
    # cancelled once; the refund sent again with the same key (Stripe replays it: one refund)
    assert refunds.cancelled == [newer["id"]] and len(refunds.keys["cancel"]) == 1
    key = f"agentmall-refund-duplicate-{newer['id']}-{intent}"
    assert refunds.keys["refund"] == [key, key] and len(refunds.refunded) == 1
    assert await _count("SELECT count(*) FROM billing_incidents") == 1


async def test_incidents_are_for_the_founder_only_and_paginated(
    client: AsyncClient,
    hooks: AsyncClient,
    subscriptions: FakeSubscriptions,
    refunds: FakeRefunds,
) -> None:
    for n in range(3):
        account_id, key = await make_account(client)
        older, newer, _ = _two_paid(subscriptions, refunds, account_id, f"cus_p{n}")
        await deliver(hooks, so.event("customer.subscription.created", older))
        await deliver(hooks, so.event("customer.subscription.created", newer))
    path = "/v1/admin/billing/incidents"
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers={"X-API-Key": key})).status_code == 403
    first = (await client.get(path, params={"limit": 2}, headers=ADMIN)).json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    rest = await client.get(
        path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=ADMIN
    )
    assert len(rest.json()["data"]) == 1 and rest.json()["next_cursor"] is None
    ids = {i["id"] for i in first["data"]} | {i["id"] for i in rest.json()["data"]}
    assert len(ids) == 3
    one = await client.get(path, params={"account_id": account_id}, headers=ADMIN)
    assert [i["account_id"] for i in one.json()["data"]] == [account_id]
    for cursor in ("inc_0000", "x" * 300, "nope\x00"):
        response = await client.get(path, params={"cursor": cursor}, headers=ADMIN)
        assert response.status_code == 400 and response.json()["error"] == "invalid_cursor"
    assert (await client.get(path, params={"limit": 101}, headers=ADMIN)).status_code == 422


async def test_a_founder_assigned_plan_survives_routine_stripe_events(
    client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    """Review finding: the next `invoice.paid` moved an enterprise contract back to pro."""
    account_id, _ = await make_account(client)
    sub = subscriptions.put(customer="cus_ent", account_id=account_id)
    await deliver(hooks, so.event("customer.subscription.created", sub))
    await set_account_plan(client, account_id, "enterprise")
    for event in (
        so.event("invoice.paid", so.invoice(customer="cus_ent", subscription=sub["id"])),
        so.event("customer.subscription.updated", sub),
    ):
        assert (await deliver(hooks, event)).json()["outcome"] == "applied"
        account = await _row("SELECT * FROM accounts WHERE id = $1", account_id)
        assert account["plan_code"] == "enterprise"  # was: pro
        assert account["subscription_status"] == "active"  # Stripe's state is still recorded
    # the flush reads the plan of the billing period: the contract's (no Pro overage)
    period = await _row("SELECT plan_code FROM billing_periods WHERE account_id = $1", account_id)
    assert period == {"plan_code": "enterprise"}
    # past due is still recorded; ending the subscription leaves the contract alone
    subscriptions.put(customer="cus_ent", account_id=account_id, status="canceled", sid=sub["id"])
    await deliver(
        hooks, so.event("customer.subscription.deleted", subscriptions.current[sub["id"]])
    )
    account = await _row("SELECT * FROM accounts WHERE id = $1", account_id)
    assert account["plan_code"] == "enterprise" and account["subscription_status"] == "canceled"
    # the founder's change stands until the founder changes it: back on free, Stripe moves it
    await set_account_plan(client, account_id, "free")
    again = subscriptions.put(customer="cus_ent", account_id=account_id)
    await deliver(hooks, so.event("customer.subscription.created", again))
    assert (await _row("SELECT plan_code FROM accounts WHERE id = $1", account_id)) == {
        "plan_code": "pro"
    }


async def test_a_recorded_period_follows_the_founders_plan(
    app: FastAPI, client: AsyncClient, hooks: AsyncClient, subscriptions: FakeSubscriptions
) -> None:
    """For `PUT /v1/admin/accounts/{id}/plan` (app/admin): the current period follows at once,
    past periods keep the plan they were billed on."""
    from app.billing import periods

    account_id, _ = await make_account(client)
    past = subscriptions.put(customer="cus_f", account_id=account_id, start=1_700_000_000)
    await deliver(hooks, so.event("customer.subscription.created", past))
    sub = subscriptions.put(customer="cus_f", account_id=account_id, sid=past["id"])
    await deliver(
        hooks, so.event("invoice.paid", so.invoice(customer="cus_f", subscription=sub["id"]))
    )
    async with app.state.services.db.unit() as session:
        await periods.follow_founder_plan(session, account_id, "enterprise")
    conn = await asyncpg.connect(database_url())
    rows = await conn.fetch(
        "SELECT plan_code FROM billing_periods WHERE account_id = $1 ORDER BY period_start",
        account_id,
    )
    await conn.close()
    assert [r["plan_code"] for r in rows] == ["pro", "enterprise"]


async def test_a_duplicate_paid_after_its_cancellation_is_refunded_when_the_payment_lands(
    client: AsyncClient,
    hooks: AsyncClient,
    subscriptions: FakeSubscriptions,
    refunds: FakeRefunds,
) -> None:
    """A bank debit still processing when the duplicate is cancelled: nothing to refund yet; the
    `invoice.paid` that reports it later refunds it (once), and the incident says so."""
    account_id, _ = await make_account(client)
    older, newer, intent = _two_paid(subscriptions, refunds, account_id, "cus_debit")
    processing = refunds.payments.pop(newer["latest_invoice"])  # not paid yet
    await deliver(hooks, so.event("customer.subscription.created", older))
    await deliver(hooks, so.event("customer.subscription.created", newer))
    assert refunds.cancelled == [newer["id"]] and refunds.refunded == []
    incident = await _row("SELECT * FROM billing_incidents WHERE subscription_id = $1", newer["id"])
    assert incident["refund_status"] == "nothing_paid"

    refunds.payments[newer["latest_invoice"]] = processing  # the debit lands
    paid = so.invoice(customer="cus_debit", subscription=newer["id"])
    for _ in range(2):  # and a redelivery refunds nothing more
        assert (await deliver(hooks, so.event("invoice.paid", paid))).status_code == 200
    [refund] = refunds.refunded
    assert refund["payment_intent"] == intent and refund["amount"] == 4900
    incident = await _row("SELECT * FROM billing_incidents WHERE subscription_id = $1", newer["id"])
    assert incident["refund_status"] == "refunded" and incident["refunded_amount"] == 4900
