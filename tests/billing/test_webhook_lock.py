"""Two deliveries for one account apply one after the other, so the later fetch of Stripe's state
applies last (the account's row lock in `_account_for`, app/billing/webhooks.py).

The interleaving is forced, not hoped for: the first delivery's subscription fetch answers state A,
Stripe then moves to state B, and that answer is held back until the second delivery has either
finished (no lock: it fetched B and committed it, and A is applied over it) or is seen waiting on a
row lock in PostgreSQL (the lock: it fetches B only once the first delivery has committed)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
import respx
from httpx import AsyncClient, Response

from tests.billing.conftest import FakeSubscriptions, deliver
from tests.conftest import database_url
from tests.support import stripe_objects as so
from tests.support.factories import make_account

CUSTOMER = "cus_lock_0001"


class SteppedSubscriptions(FakeSubscriptions):
    """Stripe whose state moves on during the first fetch: that fetch answers the state it found
    (A), the state becomes `then` (B), and the answer is held until `release` is set."""

    def __init__(self, mock: respx.MockRouter) -> None:
        super().__init__(mock)
        self.then: dict[str, Any] | None = None
        self.answered: list[str] = []  # the status each fetch answered, in order
        self.first_fetch = asyncio.Event()
        self.release = asyncio.Event()

    async def _get(self, request: Any, sid: str) -> Response:  # type: ignore[override]
        response = super()._get(request, sid)
        self.answered.append(self.current[sid]["status"])
        if len(self.answered) == 1:
            assert self.then is not None
            self.current[sid] = self.then  # Stripe moves on while the answer is in flight
            self.first_fetch.set()
            await asyncio.wait_for(self.release.wait(), timeout=30)
        return response


async def _account(account_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url())
    try:
        row = await conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def _set_customer(account_id: str, customer: str) -> None:
    conn = await asyncpg.connect(database_url())
    try:
        await conn.execute(
            "UPDATE accounts SET stripe_customer_id = $1 WHERE id = $2", customer, account_id
        )
    finally:
        await conn.close()


async def _finished_or_waiting_on_a_lock(delivery: asyncio.Task[Any]) -> bool:
    """Wait until `delivery` has answered (False) or a backend of this database waits on a
    lock (True): the only two ways the second delivery can go while the first is held."""
    conn = await asyncpg.connect(database_url())
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if delivery.done():
                return False
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return True
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    raise AssertionError("the second delivery neither finished nor waited on a lock in 20 s")


def _event_about(subscription: dict[str, Any], *, with_account_id: bool) -> dict[str, Any]:
    """A `customer.subscription.updated` delivery; without the account id in its metadata (a
    subscription made outside Checkout) the account is found by its Stripe customer."""
    obj = dict(subscription)
    if not with_account_id:
        obj["metadata"] = {}
    return so.event("customer.subscription.updated", obj)


@pytest.mark.parametrize("found_by", ["account_id", "customer"])
async def test_the_later_fetch_of_stripe_state_applies_last(
    client: AsyncClient,
    hooks: AsyncClient,
    stripe_api: respx.MockRouter,
    bootstrapped: None,
    found_by: str,
) -> None:
    stripe = SteppedSubscriptions(stripe_api)
    account_id, _ = await make_account(client)
    if found_by == "customer":
        await _set_customer(account_id, CUSTOMER)
    # B (Stripe's state after the first fetch), then A (its state when the first fetch arrives).
    state_b = stripe.put(customer=CUSTOMER, account_id=account_id, status="past_due")
    stripe.then = state_b
    state_a = stripe.put(customer=CUSTOMER, account_id=account_id, sid=state_b["id"])
    assert state_a["status"] == "active"
    by_id = found_by == "account_id"

    first = asyncio.create_task(deliver(hooks, _event_about(state_a, with_account_id=by_id)))
    await asyncio.wait_for(stripe.first_fetch.wait(), timeout=20)
    second = asyncio.create_task(deliver(hooks, _event_about(state_b, with_account_id=by_id)))
    second_waited = await _finished_or_waiting_on_a_lock(second)
    stripe.release.set()
    responses = [await first, await second]

    assert [r.json()["outcome"] for r in responses] == ["applied", "applied"], responses
    account = await _account(account_id)
    # Stripe's state now is B, and the account must end there: A, fetched earlier, may not land
    # on top of it.
    assert account["subscription_status"] == "past_due", stripe.answered
    assert account["stripe_subscription_id"] == state_b["id"] and account["plan_code"] == "pro"
    assert stripe.answered == ["active", "past_due"]
    assert second_waited, "the second delivery did not wait for the first one's row lock"
