"""Stripe webhook events: verified, applied exactly once, never rolled back by a late delivery.

Exactly once: the event id is inserted into `stripe_events` in the same transaction as its effect
(`ON CONFLICT DO NOTHING`); a redelivery finds it and changes nothing, and a failed effect rolls the
id back so Stripe's retry applies it.

Order-safe: no event's payload is trusted as the current state. With the account's row locked, the
subscription is re-fetched from Stripe and its *current* state is applied (plan, status, period),
so an old `customer.subscription.updated` delivered after a newer one applies the newest state, and
two deliveries for one account apply one after the other.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repo
from app.accounts import service as accounts_service
from app.accounts.versions import PolicyVersions
from app.billing import repository as repo
from app.billing.errors import StripeUnavailable
from app.billing.stripe_objects import MONTHLY_LOOKUP_KEY, OVERAGE_LOOKUP_KEY, WEBHOOK_EVENTS
from app.core.errors import AppError
from app.models import Account, BillingPeriod

logger = logging.getLogger("agentmall.billing")

HANDLED = frozenset(WEBHOOK_EVENTS)
PAID_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})
PRO_LOOKUP_KEYS = frozenset({MONTHLY_LOOKUP_KEY, OVERAGE_LOOKUP_KEY})
FREE_PLAN = "free"
STRIPE_PLANS = frozenset({"pro"})  # plans sold through Stripe: the only ones a webhook changes


class InvalidSignature(AppError):
    status_code = 400
    code = "invalid_signature"
    default_message = "The Stripe-Signature header does not match this body (or is too old)."


class InvalidPayload(AppError):
    status_code = 400
    code = "invalid_payload"
    default_message = "The body is not a Stripe event."


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event, if `signature` signs exactly these bytes within 300 s; 400 otherwise."""
    if not signature:
        raise InvalidSignature("Missing Stripe-Signature header.")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except (stripe.SignatureVerificationError, TypeError) as exc:  # TypeError: non-ASCII header
        raise InvalidSignature() from exc
    except ValueError as exc:
        raise InvalidPayload() from exc
    data = event.to_dict()
    if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
        raise InvalidPayload()
    return data


async def handle(
    session: AsyncSession,
    client: stripe.StripeClient,
    versions: PolicyVersions,
    event: dict[str, Any],
) -> str:
    """Apply one verified event once; answers what happened (`applied`, `duplicate`, ...)."""
    obj = event.get("data", {}).get("object") or {}
    account = await _account_for(session, event["type"], obj) if event["type"] in HANDLED else None
    if not await repo.record_event(
        session,
        event_id=event["id"],
        event_type=event["type"],
        account_id=account.id if account else None,
    ):
        return "duplicate"
    if event["type"] not in HANDLED:
        return "ignored"
    if account is None:
        logger.warning("Stripe event %s (%s) matches no account", event["id"], event["type"])
        return "no_account"
    subscription_id = _subscription_id(event["type"], obj)
    if event["type"] == "checkout.session.completed":
        _link(account, obj)
    if not subscription_id:
        return "no_subscription"
    if account.stripe_subscription_id not in (None, subscription_id):
        current = account.stripe_subscription_id
        if account.subscription_status in PAID_STATUSES:
            logger.info(
                "event %s is about %s, not current %s", event["id"], subscription_id, current
            )
            return "other_subscription"
    subscription = await _fetch(client, subscription_id)
    if subscription is not None and subscription.get("status") not in PAID_STATUSES:
        subscription = await _live_instead(client, subscription) or subscription
    if subscription is None:
        logger.warning(
            "event %s names subscription %s, which Stripe does not know",
            event["id"],
            subscription_id,
        )
        return "subscription_missing"
    await apply_subscription(session, versions, account, subscription)
    return "applied"


async def _account_for(
    session: AsyncSession, event_type: str, obj: dict[str, Any]
) -> Account | None:
    """The account an event is about (its row locked for the rest of the transaction)."""
    metadata = obj.get("metadata") or {}
    account_id = obj.get("client_reference_id") if event_type.startswith("checkout.") else None
    account_id = account_id or metadata.get("account_id")
    if isinstance(account_id, str):
        account = await repo.account_for_update(session, account_id)
        if account is not None:
            return account
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if isinstance(customer, str):
        return await repo.account_by_customer(session, customer)
    return None


def _subscription_id(event_type: str, obj: dict[str, Any]) -> str | None:
    """The subscription an event concerns (its id wherever this API version puts it)."""
    if event_type.startswith("customer.subscription."):
        return _id(obj.get("id"))
    found = _id(obj.get("subscription"))
    if found is None and event_type.startswith("invoice."):
        parent = obj.get("parent") or {}
        found = _id((parent.get("subscription_details") or {}).get("subscription"))
    return found


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _link(account: Account, checkout_session: dict[str, Any]) -> None:
    """Remember the customer a completed Checkout created or used for this account."""
    customer = _id(checkout_session.get("customer"))
    if customer and account.stripe_customer_id != customer:
        if account.stripe_customer_id:
            logger.warning("account %s: Stripe customer replaced by Checkout", account.id)
        account.stripe_customer_id = customer


async def _fetch(client: stripe.StripeClient, subscription_id: str) -> dict[str, Any] | None:
    """The subscription as Stripe has it now (the only state we apply); None if unknown."""
    try:
        found = await client.v1.subscriptions.retrieve_async(subscription_id)
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            return None
        raise StripeUnavailable() from exc
    except stripe.StripeError as exc:
        logger.warning("could not fetch subscription %s: %s", subscription_id, type(exc).__name__)
        raise StripeUnavailable() from exc
    return found.to_dict()


async def _live_instead(
    client: stripe.StripeClient, ended: dict[str, Any]
) -> dict[str, Any] | None:
    """Another live subscription of the same customer (a second Checkout paid by mistake):
    when one ends, the account follows the one still being paid for, not the free plan."""
    customer = _id(ended.get("customer"))
    if customer is None:
        return None
    try:
        found = await client.v1.subscriptions.list_async(
            {"customer": customer, "status": "all", "limit": 20}
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable() from exc
    for candidate in found.to_dict().get("data") or []:
        if candidate.get("id") != ended.get("id") and candidate.get("status") in PAID_STATUSES:
            logger.error(
                "customer %s pays for two subscriptions (%s ended, %s live): following %s",
                customer,
                ended.get("id"),
                candidate.get("id"),
                candidate.get("id"),
            )
            return dict(candidate)
    return None


def _period(subscription: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The current period: on the items (API 2025+) or on the subscription (older versions)."""
    items = (subscription.get("items") or {}).get("data") or []
    for source in [*items, subscription]:
        start, end = source.get("current_period_start"), source.get("current_period_end")
        if isinstance(start, int) and isinstance(end, int) and start < end:
            return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    return None


def _plan_of(subscription: dict[str, Any]) -> str:
    """Which of our plans a live subscription is for (Pro: the only one sold through Stripe)."""
    metadata_plan = (subscription.get("metadata") or {}).get("plan")
    for item in (subscription.get("items") or {}).get("data") or []:
        if (item.get("price") or {}).get("lookup_key") in PRO_LOOKUP_KEYS:
            return "pro"
    return metadata_plan if isinstance(metadata_plan, str) and metadata_plan else "pro"


async def apply_subscription(
    session: AsyncSession,
    versions: PolicyVersions,
    account: Account,
    subscription: dict[str, Any],
) -> None:
    """Make the account match the subscription: plan, status, period; the gate sees it at once."""
    status = str(subscription.get("status") or "")
    period = _period(subscription)
    paid = status in PAID_STATUSES
    plan_code = _plan_of(subscription) if paid else FREE_PLAN
    if not paid and account.plan_code not in STRIPE_PLANS:
        plan_code = account.plan_code  # a plan the founder assigned (a contract) stays
    if await accounts_repo.get_plan(session, plan_code) is None:
        logger.error("subscription %s names unknown plan %s", subscription.get("id"), plan_code)
        plan_code = account.plan_code
    account.stripe_subscription_id = _id(subscription.get("id"))
    account.stripe_customer_id = account.stripe_customer_id or _id(subscription.get("customer"))
    account.subscription_status = status
    account.plan_code = plan_code
    account.current_period_start, account.current_period_end = (
        period if paid and period else (None, None)
    )
    await accounts_repo.add(session, account)
    if paid and period and account.stripe_customer_id:
        await repo.put_billing_period(
            session,
            BillingPeriod(
                account_id=account.id,
                period_start=period[0],
                period_end=period[1],
                plan_code=plan_code,
                stripe_customer_id=account.stripe_customer_id,
            ),
        )
    await accounts_service.bump_account(session, versions, account.id)
