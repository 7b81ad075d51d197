"""Billing guards found by review: a founder-assigned contract cannot buy Pro (it would pay for
nothing: webhooks never move a contract), the Portal and its manage link refuse an account holding
a suspended key, and a suspended key that expired can still be lifted (then Checkout works)."""

from __future__ import annotations

import asyncpg
import respx
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.links import MANAGE_CONTEXT, upgrade_token
from tests.billing.conftest import STRIPE_BASE
from tests.billing.stripe_fakes import FakeCheckout
from tests.conftest import database_url
from tests.support import stripe_objects as so
from tests.support.factories import ADMIN, key_headers, make_account

PRO = {"plan": "pro"}


async def _sql(statement: str, *args: object) -> None:
    conn = await asyncpg.connect(database_url())
    await conn.execute(statement, *args)
    await conn.close()


async def test_a_contract_account_cannot_buy_pro_through_checkout(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    """An `enterprise` account (founder-assigned) that pays a Pro Checkout stays on enterprise
    (webhooks never override a contract) and is charged $49 a month for nothing."""
    fake = FakeCheckout(stripe_api)
    account_id, key = await make_account(client, plan="enterprise")
    response = await client.post("/v1/billing/checkout", json=PRO, headers=key_headers(key))
    assert response.status_code == 409, response.text  # was: 200 and a Stripe session
    link = {"token": upgrade_token(app.state.services.settings, account_id)}
    followed = await client.get("/v1/billing/upgrade", params=link)
    assert followed.status_code == 409, followed.text  # was: 303 to Checkout
    assert fake.route.call_count == 0


async def test_an_account_holding_a_suspended_key_gets_no_portal_link(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    """README: "Checkout, Portal and both links ... a suspended account (or one holding a
    suspended key) is refused before any Stripe call"."""
    portal = stripe_api.post(f"{STRIPE_BASE}/v1/billing_portal/sessions").mock(
        return_value=Response(200, json=so.portal_session())
    )
    account_id, key = await make_account(client)
    other = (await client.post("/v1/keys", headers=key_headers(key))).json()["api_key"]
    await _sql(
        "UPDATE accounts SET stripe_customer_id = 'cus_x', stripe_subscription_id = 'sub_x',"
        " subscription_status = 'active' WHERE id = $1",
        account_id,
    )
    key_id = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"][0]["id"]
    assert (await client.post(f"/v1/admin/keys/{key_id}/suspend", headers=ADMIN)).status_code == 200
    response = await client.post("/v1/billing/portal", headers=key_headers(other))
    assert response.status_code == 403, response.text  # was: 200 with a Portal URL
    manage = {
        "token": upgrade_token(app.state.services.settings, account_id, context=MANAGE_CONTEXT)
    }
    followed = await client.get("/v1/billing/manage", params=manage)
    assert followed.status_code == 403, followed.text  # was: 303 to the Portal
    assert portal.call_count == 0


async def test_an_expired_suspended_key_does_not_lock_the_account_out_of_checkout_for_good(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    """Rotated, then suspended, then its grace ended: the founder can no longer lift the
    suspension (404, the key is not live), and Checkout refuses the account forever."""
    FakeCheckout(stripe_api)
    _, key = await make_account(client)
    old_id = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"][0]["id"]
    rotated = await client.post(
        f"/v1/keys/{old_id}/rotate", json={"grace_seconds": 60}, headers=key_headers(key)
    )
    new_key = rotated.json()["api_key"]
    assert (await client.post(f"/v1/admin/keys/{old_id}/suspend", headers=ADMIN)).status_code == 200
    await _sql("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", old_id)
    await client.post(f"/v1/admin/keys/{old_id}/unsuspend", headers=ADMIN)  # the founder tries
    response = await client.post("/v1/billing/checkout", json=PRO, headers=key_headers(new_key))
    assert response.status_code == 200, response.text  # was: 403 key_suspended, for good
