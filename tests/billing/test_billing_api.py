"""Checkout, the Customer Portal and the one-click upgrade link (control plane)."""

from __future__ import annotations

from urllib.parse import parse_qs

import respx
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.links import MANAGE_CONTEXT, upgrade_token
from tests.billing.conftest import METERED_PRICE, MONTHLY_PRICE, STRIPE_BASE
from tests.support import stripe_objects as so
from tests.support.factories import key_headers, make_account, set_plan


def _route_checkout(stripe_api: respx.MockRouter) -> tuple[respx.Route, respx.Route]:
    customers = stripe_api.post(f"{STRIPE_BASE}/v1/customers").mock(
        side_effect=lambda request: Response(200, json=so.customer(email="dev@example.com"))
    )
    sessions = stripe_api.post(f"{STRIPE_BASE}/v1/checkout/sessions").mock(
        side_effect=lambda request: Response(
            200, json=so.checkout_session(url="https://checkout.stripe.test/c/pay/cs_1")
        )
    )
    return customers, sessions


def _form(route: respx.Route, index: int = -1) -> dict[str, list[str]]:
    return parse_qs(route.calls[index].request.content.decode())


async def test_checkout_creates_one_customer_and_a_subscription_session(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    customers, sessions = _route_checkout(stripe_api)
    account_id, key = await make_account(client)
    for _ in range(2):
        response = await client.post(
            "/v1/billing/checkout", json={"plan": "pro"}, headers=key_headers(key)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"url": "https://checkout.stripe.test/c/pay/cs_1"}
    assert customers.call_count == 1  # one Stripe customer per account, reused
    assert customers.calls[0].request.headers["idempotency-key"].endswith(account_id)
    form = _form(sessions)
    assert form["mode"] == ["subscription"]
    assert form["client_reference_id"] == [account_id]
    assert form["metadata[account_id]"] == [account_id]
    assert form["subscription_data[metadata][account_id]"] == [account_id]
    assert form["line_items[0][price]"] == [MONTHLY_PRICE]
    assert form["line_items[1][price]"] == [METERED_PRICE]
    assert form["success_url"][0].startswith("https://api.agentmall.test/portal/return")
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 0  # control plane: never metered


async def test_checkout_refuses_what_cannot_be_bought_without_calling_stripe(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    customers, sessions = _route_checkout(stripe_api)
    _, key = await make_account(client)
    for body, error in [
        ({"plan": "free"}, "plan_not_purchasable"),
        ({"plan": "enterprise"}, "plan_not_purchasable"),
        ({"plan": "gold"}, "plan_not_purchasable"),
        ({"plan": "PRO!"}, "validation_error"),
        ({}, "validation_error"),
        ({"plan": "pro", "extra": 1}, "validation_error"),
    ]:
        response = await client.post("/v1/billing/checkout", json=body, headers=key_headers(key))
        assert response.status_code == 422, body
        assert response.json()["error"] == error
    assert customers.call_count == 0 and sessions.call_count == 0
    response = await client.post("/v1/billing/checkout", json={"plan": "pro"})
    assert response.status_code == 401


async def test_checkout_is_never_blocked_by_the_quota(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    _route_checkout(stripe_api)
    await set_plan(client, "free", included_calls=1)
    _, key = await make_account(client)
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 429
    response = await client.post(
        "/v1/billing/checkout", json={"plan": "pro"}, headers=key_headers(key)
    )
    assert response.status_code == 200


async def test_checkout_before_the_bootstrap_is_a_clear_503(
    client: AsyncClient, stripe_api: respx.MockRouter
) -> None:
    _, key = await make_account(client)
    response = await client.post(
        "/v1/billing/checkout", json={"plan": "pro"}, headers=key_headers(key)
    )
    assert response.status_code == 503
    assert response.json()["error"] == "billing_not_bootstrapped"


async def test_stripe_down_is_a_clear_502(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    stripe_api.post(f"{STRIPE_BASE}/v1/customers").mock(
        return_value=Response(500, json={"error": {}})
    )
    _, key = await make_account(client)
    response = await client.post(
        "/v1/billing/checkout", json={"plan": "pro"}, headers=key_headers(key)
    )
    assert response.status_code == 502 and response.json()["error"] == "stripe_unavailable"


async def test_portal_needs_a_subscription(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    portal = stripe_api.post(f"{STRIPE_BASE}/v1/billing_portal/sessions").mock(
        return_value=Response(200, json=so.portal_session(url="https://billing.stripe.test/p/1"))
    )
    account_id, key = await make_account(client)
    response = await client.post("/v1/billing/portal", headers=key_headers(key))
    assert response.status_code == 409 and response.json()["error"] == "no_subscription"
    assert portal.call_count == 0
    import asyncpg

    from tests.conftest import database_url

    conn = await asyncpg.connect(database_url())
    await conn.execute(
        "UPDATE accounts SET stripe_customer_id = 'cus_1', stripe_subscription_id = 'sub_1',"
        " subscription_status = 'active' WHERE id = $1",
        account_id,
    )
    await conn.close()
    response = await client.post("/v1/billing/portal", headers=key_headers(key))
    assert response.status_code == 200
    assert response.json() == {"url": "https://billing.stripe.test/p/1"}
    assert parse_qs(portal.calls[0].request.content.decode())["customer"] == ["cus_1"]


async def test_the_upgrade_link_in_a_quota_error_opens_checkout(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    _, sessions = _route_checkout(stripe_api)
    await set_plan(client, "free", included_calls=1)
    account_id, key = await make_account(client)
    await client.get("/v1/products", headers=key_headers(key))
    refused = await client.get("/v1/products", headers=key_headers(key))
    assert refused.status_code == 429
    link = refused.json()["upgrade_url"]
    response = await client.get(link.replace("https://api.agentmall.test", ""))  # no API key
    assert response.status_code == 303
    assert response.headers["location"] == "https://checkout.stripe.test/c/pay/cs_1"
    assert _form(sessions)["client_reference_id"] == [account_id]


async def test_bad_upgrade_links_are_400(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    _, sessions = _route_checkout(stripe_api)
    account_id, _ = await make_account(client)
    settings = app.state.services.settings
    good = upgrade_token(settings, account_id)
    body, mac = good.split(".")
    expired = upgrade_token(settings, account_id, now=1_000_000)
    for token in [good[:-2] + "xx", f"{body}x.{mac}", expired, "a.b", "x" * 301, "nodot"]:
        response = await client.get("/v1/billing/upgrade", params={"token": token})
        assert response.status_code in (400, 422), token
        assert response.json()["error"] in ("invalid_upgrade_link", "validation_error")
    manage = upgrade_token(settings, account_id, context=MANAGE_CONTEXT)  # another purpose
    response = await client.get("/v1/billing/upgrade", params={"token": manage})
    assert response.status_code == 400
    response = await client.get("/v1/billing/manage", params={"token": good})
    assert response.status_code == 400
    unknown = upgrade_token(settings, "acct_unknown")
    response = await client.get("/v1/billing/upgrade", params={"token": unknown})
    assert response.status_code == 400
    assert sessions.call_count == 0


async def test_feature_error_carries_a_working_upgrade_link(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    _route_checkout(stripe_api)
    _, key = await make_account(client)
    response = await client.post(
        "/v1/products/bulk", json={"skus": ["A"]}, headers=key_headers(key)
    )
    assert response.status_code == 403
    link = response.json()["upgrade_url"]
    followed = await client.get(link.replace("https://api.agentmall.test", ""))
    assert followed.status_code == 303


async def test_billing_without_stripe_settings_is_503(
    client: AsyncClient, redis_prefix: str, bridge: object
) -> None:
    from httpx import ASGITransport

    from app.main import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings("redis", redis_prefix))
    async with AsyncClient(transport=ASGITransport(app), base_url="http://plain") as plain:
        _, key = await make_account(plain)
        for path in ("/v1/billing/checkout", "/v1/billing/portal"):
            response = await plain.post(path, json={"plan": "pro"}, headers=key_headers(key))
            assert response.status_code == 503, path
            assert response.json()["error"] == "billing_not_configured"
        response = await plain.post(
            "/v1/billing/checkout", json={"plan": "pro"}, headers=key_headers(key)
        )
        assert response.json()["error"] == "billing_not_configured"
        assert (await plain.get("/v1/products", headers=key_headers(key))).status_code == 200
    await app.state.services.close()


async def test_an_upgrade_link_opens_checkout_and_nothing_else(
    app: FastAPI, client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    """Review finding: once the account paid, an old upgrade link opened the Customer Portal."""
    import asyncpg

    from tests.conftest import database_url

    portal = stripe_api.post(f"{STRIPE_BASE}/v1/billing_portal/sessions").mock(
        return_value=Response(200, json=so.portal_session())
    )
    account_id, _ = await make_account(client)
    link = upgrade_token(app.state.services.settings, account_id)
    conn = await asyncpg.connect(database_url())
    await conn.execute(
        "UPDATE accounts SET stripe_customer_id = 'cus_paid', stripe_subscription_id = 'sub_1',"
        " subscription_status = 'active', plan_code = 'pro' WHERE id = $1",
        account_id,
    )
    await conn.close()
    response = await client.get("/v1/billing/upgrade", params={"token": link})
    assert response.status_code == 409 and response.json()["error"] == "already_subscribed"
    assert portal.call_count == 0
