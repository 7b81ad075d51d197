"""One subscription per account: a second paid subscription is cancelled at once and refunded.

Checkout hands out an account's open session again and refuses an account already subscribed,
but two sessions can still both be paid (a race with the first one's webhook, or a session
opened before the guard). The webhook handler, holding the account's row lock, passes the
customer's subscriptions sold through Checkout to `keep_one`:

* the oldest (by `created`, then id) is kept, and the account follows it;
* each newer one is cancelled (`DELETE /v1/subscriptions/{id}`) and the payment of its latest
  invoice refunded (this API version lists an invoice's payments as `invoice_payments`, each a
  PaymentIntent or a Charge: `POST /v1/refunds` for each paid one), logged at WARNING, and
  recorded as a `billing_incidents` row for the founder (`GET /v1/admin/billing/incidents`).

Never twice, never half: the Stripe calls carry idempotency keys derived from the subscription id,
and the cancel leaves our comment on the subscription. A webhook that fails after the cancel
(Stripe down at the refund: 502, rolled back, retried by Stripe) finds the subscription cancelled
by us with no incident recorded, so it skips the cancel, sends the same refund again (Stripe
replays it: one refund) and records the incident. Once that row is committed (unique per
subscription), later deliveries find it and call Stripe no more, except while its refund says
`nothing_paid`: a first payment still processing (a bank debit) when the duplicate was cancelled
is refunded by the event that reports it paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing import repository as repo
from app.billing.errors import StripeUnavailable
from app.models import Account, BillingIncident, new_id

logger = logging.getLogger("agentmall.billing")

KIND = "duplicate_subscription"
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})  # being paid for
COMMENT = "AgentMall: a second subscription of one account, cancelled and refunded"
REFUNDABLE = ("payment_intent", "charge")  # what an invoice payment points at


NOTHING_PAID = "nothing_paid"  # so far: a payment still processing is refunded once it is paid


@dataclass
class Refunds:
    status: str = NOTHING_PAID
    ids: list[str] = field(default_factory=list)
    amount: int = 0
    currency: str | None = None


def oldest_first(live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(live, key=lambda s: (int(s.get("created") or 0), str(s.get("id"))))


def cancelled_by_us(subscription: dict[str, Any]) -> bool:
    """Cancelled here as a duplicate (our comment on it), whether or not that was recorded."""
    details = subscription.get("cancellation_details") or {}
    return subscription.get("status") == "canceled" and details.get("comment") == COMMENT


async def keep_one(
    session: AsyncSession,
    client: stripe.StripeClient,
    account: Account,
    subscriptions: list[dict[str, Any]],
    event_id: str,
) -> dict[str, Any] | None:
    """The live subscription the account follows (the oldest, if any is live); each newer live one
    is cancelled and refunded, and one we cancelled before without recording it (the webhook
    failed after the cancel) is refunded and recorded now."""
    live = oldest_first([s for s in subscriptions if s.get("status") in LIVE_STATUSES])
    keep = live[0] if live else None
    unfinished = [s for s in subscriptions if cancelled_by_us(s)]
    for duplicate in [*live[1:], *unfinished]:
        incident = await repo.find_incident(session, KIND, str(duplicate["id"]))
        if incident is None:
            await _cancel_and_refund(session, client, account, duplicate, keep, event_id)
        elif incident.refund_status == NOTHING_PAID and cancelled_by_us(duplicate):
            await _refund_late(session, client, account, duplicate, incident)
    return keep


async def _refund_late(
    session: AsyncSession,
    client: stripe.StripeClient,
    account: Account,
    duplicate: dict[str, Any],
    incident: BillingIncident,
) -> None:
    """A duplicate cancelled while its first payment was still processing (bank debits) had
    nothing to refund then; its later events (`invoice.paid`) refund what has been paid since."""
    refunds = await _refund(client, duplicate, account.id)
    if refunds.status == NOTHING_PAID:
        return
    await repo.set_incident_refund(
        session,
        incident.id,
        status=refunds.status,
        amount=refunds.amount,
        currency=refunds.currency,
        ids=refunds.ids,
    )
    logger.warning(
        "account %s: duplicate subscription %s was paid after its cancellation: refund %s %s %s",
        account.id,
        duplicate["id"],
        refunds.status,
        refunds.amount,
        refunds.currency or "",
    )


async def _cancel_and_refund(
    session: AsyncSession,
    client: stripe.StripeClient,
    account: Account,
    duplicate: dict[str, Any],
    keep: dict[str, Any] | None,
    event_id: str,
) -> None:
    sid = str(duplicate["id"])
    cancelled = "cancelled" if cancelled_by_us(duplicate) else await _cancel(client, sid)
    refunds = await _refund(client, duplicate, account.id) if cancelled == "cancelled" else None
    refunds = refunds or Refunds(status="skipped: not cancelled")
    await repo.add_incident(
        session,
        BillingIncident(
            id=new_id("inc"),
            kind=KIND,
            account_id=account.id,
            stripe_customer_id=_id(duplicate.get("customer")),
            subscription_id=sid,
            kept_subscription_id=str(keep["id"]) if keep else None,
            event_id=event_id,
            cancel_status=cancelled,
            refund_status=refunds.status,
            refunded_amount=refunds.amount,
            currency=refunds.currency,
            refund_ids=refunds.ids,
        ),
    )
    log = logger.warning if cancelled == "cancelled" else logger.error
    log(
        "account %s paid for a second subscription %s (kept %s): cancel %s, refund %s %s %s",
        account.id,
        sid,
        keep["id"] if keep else None,
        cancelled,
        refunds.status,
        refunds.amount,
        refunds.currency or "",
    )


async def _cancel(client: stripe.StripeClient, sid: str) -> str:
    """Cancel now (no proration, no final invoice); how it went, for the incident."""
    try:
        await client.v1.subscriptions.cancel_async(
            sid,
            {"cancellation_details": {"comment": COMMENT}},
            {"idempotency_key": f"agentmall-cancel-duplicate-{sid}"},
        )
    except stripe.InvalidRequestError as exc:  # permanent: the founder takes it from here
        return "already_ended" if exc.code == "resource_missing" else f"failed: {exc.code}"
    except stripe.StripeError as exc:
        raise _unavailable(exc, "cancel", sid) from exc
    return "cancelled"


async def _refund(
    client: stripe.StripeClient, duplicate: dict[str, Any], account_id: str
) -> Refunds:
    """Refund every paid payment of the subscription's latest invoice."""
    invoice = _id(duplicate.get("latest_invoice"))
    if invoice is None:
        return Refunds()
    sid = str(duplicate["id"])
    try:
        found = await client.v1.invoice_payments.list_async(
            {"invoice": invoice, "status": "paid", "limit": 10}
        )
    except stripe.InvalidRequestError as exc:
        return Refunds(status=f"failed: {exc.code}")
    except stripe.StripeError as exc:
        raise _unavailable(exc, "list payments of", sid) from exc
    result = Refunds()
    for payment in found.to_dict().get("data") or []:
        await _refund_payment(client, payment.get("payment") or {}, sid, account_id, result)
    return result


async def _refund_payment(
    client: stripe.StripeClient,
    payment: dict[str, Any],
    sid: str,
    account_id: str,
    result: Refunds,
) -> None:
    kind = payment.get("type")
    target = _id(payment.get(kind)) if isinstance(kind, str) else None
    if kind not in REFUNDABLE or target is None:
        result.status = f"failed: cannot refund a {kind} payment"
        return
    params: Any = {  # a refund of the PaymentIntent (or the Charge) the invoice was paid with
        kind: target,
        "reason": "duplicate",
        "metadata": {"account_id": account_id, "subscription_id": sid},
    }
    try:
        refund = await client.v1.refunds.create_async(
            params, {"idempotency_key": f"agentmall-refund-duplicate-{sid}-{target}"}
        )
    except stripe.InvalidRequestError as exc:
        already = exc.code == "charge_already_refunded"
        result.status = "already_refunded" if already else f"failed: {exc.code}"
        return
    except stripe.StripeError as exc:
        raise _unavailable(exc, "refund", sid) from exc
    result.ids.append(str(refund["id"]))
    result.amount += int(refund["amount"] or 0)
    result.currency = str(refund["currency"])
    if not result.status.startswith("failed"):
        result.status = "refunded"


def _unavailable(exc: stripe.StripeError, what: str, sid: str) -> StripeUnavailable:
    logger.warning("could not %s duplicate subscription %s: %s", what, sid, type(exc).__name__)
    return StripeUnavailable()


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None
