"""Stripe webhook events: verified, applied exactly once, never rolled back by a late delivery.

Exactly once: the event id is inserted into `stripe_events` in the same transaction as its effect
(`ON CONFLICT DO NOTHING`); a redelivery finds it and changes nothing, and a failed effect rolls the
id back so Stripe's retry applies it.

Order-safe: no event's payload is trusted as the current state. With the account's row locked, the
subscription is re-fetched from Stripe and its *current* state is applied (plan, status, period),
so an old `customer.subscription.updated` delivered after a newer one applies the newest state, and
two deliveries for one account apply one after the other.

One subscription per account: with the row still locked, the customer's live subscriptions are
listed too; if Checkout sold two, the account follows the oldest and `duplicates.keep_one` cancels
and refunds the newer (idempotently, recorded once as a billing incident), whichever of their
events arrives first.

Contracts stand: Stripe events move an account only between the plans Stripe sells (free and
pro). An account the founder put on another plan (`enterprise`, a custom one) keeps it; the
subscription's status and period are still recorded, and its billing period carries the
founder's plan, so the metering flush never bills Pro overage for it.
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
from app.billing import duplicates
from app.billing import repository as repo
from app.billing.errors import StripeUnavailable
from app.billing.stripe_objects import MONTHLY_LOOKUP_KEY, OVERAGE_LOOKUP_KEY, WEBHOOK_EVENTS
from app.core.errors import AppError
from app.models import Account, BillingPeriod

logger = logging.getLogger("agentmall.billing")

HANDLED = frozenset(WEBHOOK_EVENTS)
PAID_STATUSES = duplicates.LIVE_STATUSES
PRO_LOOKUP_KEYS = frozenset({MONTHLY_LOOKUP_KEY, OVERAGE_LOOKUP_KEY})
FREE_PLAN = "free"
STRIPE_PLANS = frozenset({"pro"})  # plans sold through Stripe
SOLD_BY_STRIPE = STRIPE_PLANS | {FREE_PLAN}  # the only plans a webhook moves an account between
CHECKOUT_CLOSED = {"checkout.session.completed": "complete", "checkout.session.expired": "expired"}


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
    if event["type"] in CHECKOUT_CLOSED and isinstance(obj.get("id"), str):
        await repo.close_checkout_session(session, obj["id"], CHECKOUT_CLOSED[event["type"]])
    if account is None:
        logger.warning("Stripe event %s (%s) matches no account", event["id"], event["type"])
        return "no_account"
    subscription_id = _subscription_id(event["type"], obj)
    if event["type"] == "checkout.session.completed":
        _link(account, obj)
    if not subscription_id:
        return "no_subscription"
    subscription = await _fetch(client, subscription_id)
    if subscription is None:
        logger.warning(
            "event %s names subscription %s, which Stripe does not know",
            event["id"],
            subscription_id,
        )
        return "subscription_missing"
    sold = await _checkout_subscriptions(client, subscription)
    # the account follows the oldest live one (when one ends, the one still being paid for)
    kept = await duplicates.keep_one(session, client, account, sold, event["id"])
    subscription = kept or subscription
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


async def _checkout_subscriptions(
    client: stripe.StripeClient, fetched: dict[str, Any]
) -> list[dict[str, Any]]:
    """The customer's subscriptions sold through Checkout, in any status, `fetched` (the freshest
    state of the event's one) in place of its listed copy."""
    customer = _id(fetched.get("customer"))
    if customer is None:
        return []
    try:
        found = await client.v1.subscriptions.list_async(
            {"customer": customer, "status": "all", "limit": 100}
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable() from exc
    others = [s for s in found.to_dict().get("data") or [] if s.get("id") != fetched.get("id")]
    return [dict(s) for s in [fetched, *others] if _sold_by_checkout(s)]


def _sold_by_checkout(subscription: dict[str, Any]) -> bool:
    """A subscription our Checkout sold (our prices, or our metadata), not one the founder made
    in Stripe by hand (a contract): only these are ever cancelled as duplicates."""
    items = (subscription.get("items") or {}).get("data") or []
    if any((item.get("price") or {}).get("lookup_key") in PRO_LOOKUP_KEYS for item in items):
        return True
    return (subscription.get("metadata") or {}).get("plan") in STRIPE_PLANS


def _period(subscription: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The current period: on the items (API 2025+) or on the subscription (older versions)."""
    items = (subscription.get("items") or {}).get("data") or []
    for source in [*items, subscription]:
        start, end = source.get("current_period_start"), source.get("current_period_end")
        if isinstance(start, int) and isinstance(end, int) and start < end:
            return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    return None


def _plan_of(subscription: dict[str, Any]) -> str:
    """Which plan Stripe sells a live subscription is for (its metadata may name one; Pro else)."""
    metadata_plan = (subscription.get("metadata") or {}).get("plan")
    return metadata_plan if metadata_plan in STRIPE_PLANS else "pro"


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
    if account.plan_code not in SOLD_BY_STRIPE:
        plan_code = account.plan_code  # a plan the founder assigned (a contract) stands
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
