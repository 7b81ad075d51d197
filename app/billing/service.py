"""Billing for developers: Stripe Checkout to upgrade, the Customer Portal to manage, and the
one-click upgrade link an agent can hand to its human.

Everything here is control plane: never metered, never blocked by the quota. Nothing calls Stripe
before the request is known to be valid (an unknown or free plan is a 422 without a Stripe call).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repo
from app.billing import repository as repo
from app.billing.errors import (
    AlreadySubscribed,
    BillingNotBootstrapped,
    BillingNotConfigured,
    InvalidUpgradeLink,
    NoSubscription,
    PlanNotPurchasable,
    StripeUnavailable,
)
from app.core.config import Settings
from app.core.links import MANAGE_CONTEXT, InvalidLink, verify_upgrade_token
from app.models import Account

logger = logging.getLogger("agentmall.billing")

PURCHASABLE = frozenset({"pro"})
CHECKOUT_TTL_S = 30 * 60  # plans with a Stripe price (created by the bootstrap)
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})


def client_or_503(client: stripe.StripeClient | None) -> stripe.StripeClient:
    """The Stripe client, or 503 `billing_not_configured`."""
    if client is None:
        raise BillingNotConfigured()
    return client


def return_url(settings: Settings, outcome: str) -> str:
    """Where Stripe sends the person back to (a small page of ours)."""
    return f"{settings.PUBLIC_BASE_URL}/v1/billing/return?status={outcome}"


async def _customer(client: stripe.StripeClient, account: Account) -> str:
    """The account's one Stripe customer: the stored id, else created (idempotently: concurrent
    checkouts for one account get the same customer)."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer = await client.v1.customers.create_async(
        {"email": account.email, "metadata": {"account_id": account.id}},
        {"idempotency_key": f"agentmall-customer-{account.id}"},
    )
    return str(customer["id"])


async def checkout(
    session: AsyncSession,
    client: stripe.StripeClient | None,
    settings: Settings,
    *,
    account: Account,
    plan: str,
) -> str:
    """The URL of a fresh subscription-mode Checkout Session for `account` to buy `plan`."""
    if plan not in PURCHASABLE:
        raise PlanNotPurchasable(f"The plan {plan!r} cannot be bought through Checkout.", plan=plan)
    stripe_client = client_or_503(client)
    # No row lock here: it would hold key revocations back for as long as Stripe takes. The
    # customer is created with an idempotency key, so concurrent checkouts share one.
    if account.stripe_subscription_id and account.subscription_status in LIVE_STATUSES:
        raise AlreadySubscribed()
    ids = await repo.get_settings(session)
    monthly, metered = ids.get(repo.MONTHLY_PRICE_ID), ids.get(repo.METERED_PRICE_ID)
    if not monthly or not metered:
        raise BillingNotBootstrapped()
    try:
        customer = await _customer(stripe_client, account)
        created = await stripe_client.v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": account.id,
                "metadata": {"account_id": account.id, "plan": plan},
                "subscription_data": {"metadata": {"account_id": account.id, "plan": plan}},
                "line_items": [{"price": monthly, "quantity": 1}, {"price": metered}],
                "success_url": return_url(settings, "success"),
                "cancel_url": return_url(settings, "cancel"),
                # the shortest life Stripe allows: fewer payable sessions left lying around
                "expires_at": int(time.time()) + CHECKOUT_TTL_S,
            }
        )
    except stripe.StripeError as exc:
        raise _unavailable(exc) from exc
    if account.stripe_customer_id != customer:  # after the Stripe calls: no lock held during them
        await repo.set_customer_if_unset(session, account.id, customer)
    return str(created["url"])


async def portal(
    session: AsyncSession, client: stripe.StripeClient | None, settings: Settings, account: Account
) -> str:
    """The URL of a Customer Portal session; 409 for an account that never paid."""
    stripe_client = client_or_503(client)
    if not account.stripe_customer_id or not account.stripe_subscription_id:
        raise NoSubscription()
    try:
        created = await stripe_client.v1.billing_portal.sessions.create_async(
            {"customer": account.stripe_customer_id, "return_url": return_url(settings, "portal")}
        )
    except stripe.StripeError as exc:
        raise _unavailable(exc) from exc
    return str(created["url"])


async def follow_upgrade_link(
    session: AsyncSession, client: stripe.StripeClient | None, settings: Settings, token: str
) -> str:
    """Where a signed upgrade link leads: a fresh Checkout Session (or the portal, if paid)."""
    try:
        account_id, plan = verify_upgrade_token(settings, token)
    except InvalidLink as exc:
        raise InvalidUpgradeLink() from exc
    account = await accounts_repo.get_account(session, account_id)
    if account is None:
        raise InvalidUpgradeLink()
    # An upgrade link opens Checkout and nothing else: once the account pays, it answers 409.
    return await checkout(session, client, settings, account=account, plan=plan)


async def follow_manage_link(
    session: AsyncSession, client: stripe.StripeClient | None, settings: Settings, token: str
) -> str:
    """Where a signed manage link (a 402's `billing_portal_url`) leads: the Customer Portal."""
    try:
        account_id, _ = verify_upgrade_token(settings, token, context=MANAGE_CONTEXT)
    except InvalidLink as exc:
        raise InvalidUpgradeLink() from exc
    account = await accounts_repo.get_account(session, account_id)
    if account is None:
        raise InvalidUpgradeLink()
    return await portal(session, client, settings, account)


def _unavailable(exc: stripe.StripeError) -> StripeUnavailable:
    logger.warning("Stripe call failed: %s", type(exc).__name__)
    return StripeUnavailable(request_id=_request_id(exc))


def _request_id(exc: stripe.StripeError) -> Any:
    return getattr(exc, "request_id", None)
