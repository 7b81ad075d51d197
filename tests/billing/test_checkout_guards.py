"""Stripe is not spendable by strangers (issue 17, item 5): an account's open Checkout Session is
reused, the billing endpoints are limited per account and per address, and a suspended account
or key gets no billing link."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import respx
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.core.config import Settings
from app.core.links import MANAGE_CONTEXT, upgrade_token
from app.main import create_app
from tests.billing.conftest import STRIPE_BASE, FakeSubscriptions, deliver
from tests.billing.stripe_fakes import FakeCheckout
from tests.conftest import database_url
from tests.support import stripe_objects as so
from tests.support.factories import key_headers, make_account

PRO = {"plan": "pro"}


async def _sql(statement: str, *args: object) -> None:
    conn = await asyncpg.connect(database_url())
    await conn.execute(statement, *args)
    await conn.close()


async def _checkout(client: AsyncClient, key: str, ip: str | None = None) -> Response:
    headers = key_headers(key) | ({"X-Forwarded-For": ip} if ip else {})
    return await client.post("/v1/billing/checkout", json=PRO, headers=headers)


def _path(url: str) -> str:
    return url.replace("https://api.agentmall.test", "")


@pytest.fixture
async def tight(settings: Settings, clean_database: None) -> AsyncIterator[AsyncClient]:
    """An API whose billing limits are 3 an hour per account and 5 per address."""
    app = create_app(
        settings.model_copy(
            update={
                "BILLING_REQUESTS_PER_ACCOUNT_PER_HOUR": 3,
                "BILLING_REQUESTS_PER_IP_PER_HOUR": 5,
            }
        )
    )
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await app.state.services.close()


async def test_twenty_checkouts_open_one_session_that_lives_a_day(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    fake = FakeCheckout(stripe_api)
    _, key = await make_account(client)
    urls = set()
    for _ in range(20):
        response = await _checkout(client, key)
        assert response.status_code == 200, response.text
        urls.add(response.json()["url"])
    assert fake.route.call_count == 1  # was 20: a new Checkout Session on every call
    assert urls == {fake.sessions[0]["url"]}
    life = int(fake.forms[0]["expires_at"]) - time.time()
    assert 24 * 3600 - 120 < life <= 24 * 3600  # Stripe's longest (was 30 minutes)


async def test_ten_follows_of_one_upgrade_link_open_one_session(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    fake = FakeCheckout(stripe_api)
    account_id, key = await make_account(client)
    link = upgrade_token(app.state.services.settings, account_id)
    locations = set()
    for _ in range(10):  # a mail scanner, a chat preview, the person, the person again
        response = await client.get("/v1/billing/upgrade", params={"token": link})
        assert response.status_code == 303, response.text
        locations.add(response.headers["location"])
    assert fake.route.call_count == 1 and len(locations) == 1
    assert (await _checkout(client, key)).json()["url"] in locations  # the same session


async def test_concurrent_checkouts_of_one_account_open_one_session(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    fake = FakeCheckout(stripe_api, delay=0.2)  # Stripe answers slowly: the race is wide open
    _, key = await make_account(client)
    responses = await asyncio.gather(*(_checkout(client, key) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert fake.route.call_count == 1
    assert {r.json()["url"] for r in responses} == {fake.sessions[0]["url"]}


async def test_an_expired_or_ending_session_is_not_reused(
    client: AsyncClient, hooks: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    fake = FakeCheckout(stripe_api)
    account_id, key = await make_account(client)
    first = (await _checkout(client, key)).json()["url"]
    expired = {**fake.sessions[0], "status": "expired", "client_reference_id": account_id}
    assert (await deliver(hooks, so.event("checkout.session.expired", expired))).status_code == 200
    second = (await _checkout(client, key)).json()["url"]
    assert second != first and fake.route.call_count == 2
    # its stored expiry is minutes away: too short to pay, so a new one is opened
    await _sql(
        "UPDATE checkout_sessions SET expires_at = now() + interval '5 minutes' WHERE id = $1",
        fake.sessions[1]["id"],
    )
    third = (await _checkout(client, key)).json()["url"]
    assert third not in (first, second) and fake.route.call_count == 3
    assert (await _checkout(client, key)).json()["url"] == third


async def test_a_completed_session_is_not_reused(
    client: AsyncClient, hooks: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    """The subscription it made ended at once (say, refused as a duplicate): the account is free
    again, and its next checkout must not hand out the spent session."""
    fake = FakeCheckout(stripe_api)
    account_id, key = await make_account(client)
    first = (await _checkout(client, key)).json()["url"]
    done = {**fake.sessions[0], "status": "complete", "client_reference_id": account_id}
    assert (await deliver(hooks, so.event("checkout.session.completed", done))).status_code == 200
    second = (await _checkout(client, key)).json()["url"]
    assert second != first and fake.route.call_count == 2


async def test_checkout_and_portal_are_limited_per_account(
    tight: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    FakeCheckout(stripe_api)
    portal = stripe_api.post(f"{STRIPE_BASE}/v1/billing_portal/sessions").mock(
        return_value=Response(200, json=so.portal_session())
    )
    _, key = await make_account(tight)
    for _ in range(2):
        assert (await _checkout(tight, key)).status_code == 200
    assert (await tight.post("/v1/billing/portal", headers=key_headers(key))).status_code == 409
    refused = await _checkout(tight, key, ip="198.51.100.1")  # another address: same account
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "rate_limit_exceeded" and body["limit_scope"] == "account"
    assert 3500 < int(refused.headers["retry-after"]) <= 3600
    assert body["retry_after"] == int(refused.headers["retry-after"])
    refused = await tight.post("/v1/billing/portal", headers=key_headers(key))
    assert refused.status_code == 429 and portal.call_count == 0
    _, other = await make_account(tight)  # other accounts are not held back
    assert (await _checkout(tight, other, ip="198.51.100.2")).status_code == 200


async def test_billing_links_are_limited_per_address(
    app: FastAPI, tight: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    fake = FakeCheckout(stripe_api)
    settings = app.state.services.settings
    links = [upgrade_token(settings, (await make_account(tight))[0]) for _ in range(3)]
    scanner = {"X-Forwarded-For": "198.51.100.9"}
    statuses = [
        (await tight.get("/v1/billing/upgrade", params={"token": t}, headers=scanner)).status_code
        for t in links * 2
    ]
    assert statuses == [303] * 5 + [429]
    manage = upgrade_token(settings, "acct_x", context=MANAGE_CONTEXT)
    response = await tight.get("/v1/billing/manage", params={"token": manage}, headers=scanner)
    assert response.status_code == 429 and response.json()["limit_scope"] == "address"
    elsewhere = {"X-Forwarded-For": "198.51.100.10"}
    response = await tight.get("/v1/billing/upgrade", params={"token": links[0]}, headers=elsewhere)
    assert response.status_code == 303
    assert fake.route.call_count == 3  # one session per account, whatever the clicks


async def test_a_suspended_account_or_key_gets_no_billing_link(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    fake = FakeCheckout(stripe_api)
    portal = stripe_api.post(f"{STRIPE_BASE}/v1/billing_portal/sessions").mock(
        return_value=Response(200, json=so.portal_session())
    )
    settings = app.state.services.settings
    account_id, key = await make_account(client)
    upgrade = {"token": upgrade_token(settings, account_id)}
    manage = {"token": upgrade_token(settings, account_id, context=MANAGE_CONTEXT)}
    await _sql("UPDATE api_keys SET status = 'suspended' WHERE account_id = $1", account_id)
    response = await client.get("/v1/billing/upgrade", params=upgrade)
    assert response.status_code == 403 and response.json()["error"] == "key_suspended"
    await _sql(
        "UPDATE accounts SET status = 'suspended', stripe_customer_id = 'cus_s',"
        " stripe_subscription_id = 'sub_s', subscription_status = 'canceled' WHERE id = $1",
        account_id,
    )
    await _sql("UPDATE api_keys SET status = 'active' WHERE account_id = $1", account_id)
    for path, params in (("/v1/billing/upgrade", upgrade), ("/v1/billing/manage", manage)):
        response = await client.get(path, params=params)
        assert response.status_code == 403, path
        assert response.json()["error"] == "account_suspended"
    for path in ("/v1/billing/checkout", "/v1/billing/portal"):
        response = await client.post(path, json=PRO, headers=key_headers(key))
        assert response.status_code == 403, path
    assert fake.route.call_count == 0 and portal.call_count == 0


async def test_a_checkout_waiting_on_stripe_holds_no_lock_on_the_account(
    client: AsyncClient,
    hooks: AsyncClient,
    bootstrapped: None,
    stripe_api: respx.MockRouter,
    subscriptions: FakeSubscriptions,
) -> None:
    """Key revocations, suspensions and webhooks lock the account row: a checkout waiting on a
    slow Stripe must not hold them back (its guard is an advisory lock of its own)."""
    fake = FakeCheckout(stripe_api, delay=1.5)
    account_id, key = await make_account(client)
    first = (await _checkout(client, key)).json()["url"]  # the customer now exists
    await _sql("UPDATE checkout_sessions SET status = 'expired'")
    pending = asyncio.create_task(_checkout(client, key))
    await asyncio.sleep(0.3)  # the checkout is waiting on Stripe now
    started = time.monotonic()
    sub = subscriptions.put(customer="cus_lock", account_id=account_id, status="incomplete")
    expired = {**fake.sessions[0], "status": "expired", "client_reference_id": account_id}
    for event in (
        so.event("customer.subscription.created", sub),
        so.event("checkout.session.expired", expired),
    ):
        assert (await deliver(hooks, event)).status_code == 200
    assert time.monotonic() - started < 1.0  # not queued behind the Stripe call
    response = await pending
    assert response.status_code == 200 and response.json()["url"] != first


async def test_link_scanners_never_lock_the_owner_out_of_checkout(
    app: FastAPI, tight: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    """Keyless follows of an account's links count in a budget of their own (per account and per
    address): scanners spending it leave the owner's own Checkout and Portal calls alone."""
    fake = FakeCheckout(stripe_api)
    account_id, key = await make_account(tight)
    link = upgrade_token(app.state.services.settings, account_id)
    statuses = []
    for n in range(4):  # scanners, each from its own address
        scanner = {"X-Forwarded-For": f"198.51.100.{20 + n}"}
        response = await tight.get("/v1/billing/upgrade", params={"token": link}, headers=scanner)
        statuses.append(response.status_code)
    assert statuses == [303, 303, 303, 429]  # the links' own budget (3 an hour) is spent
    owner = await _checkout(tight, key, ip="198.51.100.40")
    assert owner.status_code == 200, owner.text
    assert fake.route.call_count == 1  # and still one session
