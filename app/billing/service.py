"""Billing for developers: Stripe Checkout to upgrade, the Customer Portal to manage, and the
one-click upgrade link an agent can hand to its human.

Everything here is control plane: never metered, never blocked by the quota. Nothing calls Stripe
before the request is known to be valid (an unknown or free plan is a 422 without a Stripe call).

Stripe is not spendable by strangers: every request counts against per-account and per-address
limits (`limits.py`), a suspended account (or, for Checkout, one holding a suspended key) is
refused, and an account's open Checkout Session for the plan is handed out again instead of a new
one, so repeated checkouts and link scanners following an upgrade link open one session a day.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repo
from app.billing import repository as repo
from app.billing.errors import (
    AccountSuspended,
    AlreadySubscribed,
    BillingNotBootstrapped,
    BillingNotConfigured,
    InvalidUpgradeLink,
    KeySuspended,
    NoSubscription,
    PlanAssignedByFounder,
    PlanNotPurchasable,
    StripeUnavailable,
)
from app.billing.limits import BillingLimiter
from app.billing.offers import PURCHASABLE, SOLD_PLANS
from app.core.config import Settings
from app.core.links import MANAGE_CONTEXT, UPGRADE_CONTEXT, InvalidLink, verify_upgrade_token
from app.models import Account, CheckoutSession, utcnow

logger = logging.getLogger("agentmall.billing")

# Stripe's longest session life (24 h from its creation), less a minute so a clock a little ahead
# of Stripe's is not refused: one session serves every checkout and link click of a day.
CHECKOUT_TTL_S = 24 * 3600 - 60
REUSE_MARGIN = timedelta(minutes=15)  # a reused session still leaves the person time to pay
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})


def client_or_503(client: stripe.StripeClient | None) -> stripe.StripeClient:
    """The Stripe client, or 503 `billing_not_configured`."""
    if client is None:
        raise BillingNotConfigured()
    return client


def return_url(settings: Settings, outcome: str) -> str:
    """Where Stripe sends the person back to: the portal's page (a person, in a browser)."""
    return f"{settings.PUBLIC_BASE_URL}/portal/return?status={outcome}"


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
    limiter: BillingLimiter,
    *,
    account: Account,
    plan: str,
) -> str:
    """The URL of a Checkout Session for `account` to buy `plan`: its open one, else a new one."""
    await limiter.check(account.id)
    return await _checkout(session, client, settings, account=account, plan=plan)


async def portal(
    session: AsyncSession,
    client: stripe.StripeClient | None,
    settings: Settings,
    limiter: BillingLimiter,
    account: Account,
) -> str:
    """The URL of a Customer Portal session; 409 for an account that never paid."""
    await limiter.check(account.id)
    return await _portal(session, client, settings, account)


async def follow_upgrade_link(
    session: AsyncSession,
    client: stripe.StripeClient | None,
    settings: Settings,
    limiter: BillingLimiter,
    token: str,
) -> str:
    """Where a signed upgrade link leads: the account's open Checkout Session, else a new one."""
    account_id, plan = _verified(settings, token, UPGRADE_CONTEXT)
    await limiter.check(account_id, keyless=True)
    account = await _linked_account(session, account_id)
    # An upgrade link opens Checkout and nothing else: once the account pays, it answers 409.
    return await _checkout(session, client, settings, account=account, plan=plan)


async def follow_manage_link(
    session: AsyncSession,
    client: stripe.StripeClient | None,
    settings: Settings,
    limiter: BillingLimiter,
    token: str,
) -> str:
    """Where a signed manage link (a 402's `billing_portal_url`) leads: the Customer Portal."""
    account_id, _ = _verified(settings, token, MANAGE_CONTEXT)
    await limiter.check(account_id, keyless=True)
    return await _portal(session, client, settings, await _linked_account(session, account_id))


def _verified(settings: Settings, token: str, context: bytes) -> tuple[str, str]:
    try:
        return verify_upgrade_token(settings, token, context=context)
    except InvalidLink as exc:
        raise InvalidUpgradeLink() from exc


async def _linked_account(session: AsyncSession, account_id: str) -> Account:
    account = await accounts_repo.get_account(session, account_id)
    if account is None:
        raise InvalidUpgradeLink()
    return account


async def _refuse_suspended(session: AsyncSession, account: Account, *, keys: bool) -> None:
    """403 for a suspended account (and, with `keys`, for one holding a suspended key)."""
    if account.status == "suspended":
        raise AccountSuspended()
    if keys and await repo.has_suspended_key(session, account.id):
        raise KeySuspended()


async def _checkout(
    session: AsyncSession,
    client: stripe.StripeClient | None,
    settings: Settings,
    *,
    account: Account,
    plan: str,
) -> str:
    if plan not in PURCHASABLE:
        raise PlanNotPurchasable(f"The plan {plan!r} cannot be bought through Checkout.", plan=plan)
    stripe_client = client_or_503(client)
    await _refuse_suspended(session, account, keys=True)
    if account.plan_code not in SOLD_PLANS:
        raise PlanAssignedByFounder(plan=account.plan_code)
    if account.stripe_subscription_id and account.subscription_status in LIVE_STATUSES:
        raise AlreadySubscribed()
    ids = await repo.get_settings(session)
    prices = ids.get(repo.MONTHLY_PRICE_ID), ids.get(repo.METERED_PRICE_ID)
    if not prices[0] or not prices[1]:
        raise BillingNotBootstrapped()
    # "Find the open session or create one" runs one at a time per account, so concurrent
    # checkouts open one session. The lock is an advisory lock, not the account's row lock: it is
    # held while Stripe answers (up to its timeout), and only this account's other checkouts
    # wait for it (then reuse the new session); key revocations, suspensions and webhooks,
    # which lock the account row, never wait on Stripe here.
    await repo.lock_checkout(session, account.id)
    found = await repo.open_checkout_session(
        session, account.id, plan, open_until=utcnow() + REUSE_MARGIN
    )
    if found is not None:
        return found.url
    return await _create_checkout(session, stripe_client, settings, account, plan, prices)


async def _create_checkout(
    session: AsyncSession,
    client: stripe.StripeClient,
    settings: Settings,
    account: Account,
    plan: str,
    prices: tuple[str | None, str | None],
) -> str:
    """A new subscription-mode Checkout Session, remembered for reuse until it closes."""
    expires_at = int(time.time()) + CHECKOUT_TTL_S
    try:
        customer = await _customer(client, account)
        created = await client.v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": account.id,
                "metadata": {"account_id": account.id, "plan": plan},
                "subscription_data": {"metadata": {"account_id": account.id, "plan": plan}},
                "line_items": [{"price": str(prices[0]), "quantity": 1}, {"price": str(prices[1])}],
                "success_url": return_url(settings, "success"),
                "cancel_url": return_url(settings, "cancel"),
                "expires_at": expires_at,
            }
        )
    except stripe.StripeError as exc:
        raise _unavailable(exc) from exc
    url = str(created["url"])
    await repo.add_checkout_session(
        session,
        CheckoutSession(
            id=str(created["id"]),
            account_id=account.id,
            plan_code=plan,
            url=url,
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        ),
    )
    if account.stripe_customer_id != customer:  # after the Stripe calls: no lock held during them
        await repo.set_customer_if_unset(session, account.id, customer)
    return url


async def _portal(
    session: AsyncSession, client: stripe.StripeClient | None, settings: Settings, account: Account
) -> str:
    stripe_client = client_or_503(client)
    await _refuse_suspended(session, account, keys=True)
    if not account.stripe_customer_id or not account.stripe_subscription_id:
        raise NoSubscription()
    try:
        created = await stripe_client.v1.billing_portal.sessions.create_async(
            {"customer": account.stripe_customer_id, "return_url": return_url(settings, "portal")}
        )
    except stripe.StripeError as exc:
        raise _unavailable(exc) from exc
    return str(created["url"])


def _unavailable(exc: stripe.StripeError) -> StripeUnavailable:
    logger.warning("Stripe call failed: %s", type(exc).__name__)
    return StripeUnavailable(request_id=_request_id(exc))


def _request_id(exc: stripe.StripeError) -> Any:
    return getattr(exc, "request_id", None)
