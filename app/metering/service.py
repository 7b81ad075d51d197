"""The `flush-usage` cron: billable overage of paid periods reaches the Stripe meter exactly once.

Two phases, each safe to crash, retry or run twice at once:

1. **Plan** (one transaction per account-period, its `meter_reports` row locked): for a period
   on a soft-gated plan with a per-call overage price (Pro; Enterprise is billed per contract)
   that ended less than 35 days ago, billable = max(0, rolled-up usage - the plan's included
   calls, read now); when it exceeds `reported`, one aggregated event for the difference goes into
   the `meter_events` outbox with the deterministic identifier
   `am_<account>_<period start>_<reported>_<billable>`, and `reported` moves to billable - in the
   same commit. A range of units is therefore in the outbox exactly once, or not yet (then a
   later run plans it).
2. **Send**: each Stripe customer's unsent events, oldest first, under a per-customer lock, one
   call at a time. An event is marked sent only once Stripe acknowledged it; a crash in between
   means it is sent again with the same identifier, and Stripe answers "already exists", which
   we count as acknowledged. A refusal (another 4xx) is logged and the event kept, retried a
   day later (so refused events never crowd out the rest of the outbox); any other failure
   (network, 5xx, 429, auth) stops the phase: the events stay in the outbox for the next run,
   and nothing else (the data plane least of all) waits on Stripe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from stripe import InvalidRequestError, StripeClient, StripeError

from app.billing import repository as billing_repo
from app.billing.stripe_objects import METER_EVENT_NAME
from app.core.db import Database
from app.metering import repository as repo
from app.metering.repository import PeriodUsage
from app.metering.schemas import FlushResult
from app.models import MeterEvent, utcnow

logger = logging.getLogger(__name__)

DEFAULT_EVENT_NAME = METER_EVENT_NAME
# Stripe accepts meter events timestamped at most 35 days in the past.
STRIPE_BACKDATE_LIMIT = timedelta(days=35)
# Customers served per run: bounds one cron invocation's duration; the rest wait for the next.
SEND_MAX_CUSTOMERS = 500


@dataclass
class SendOutcome:
    sent: int = 0
    rejected: int = 0
    failed: str | None = None


async def flush(db: Database, stripe: StripeClient, *, now: datetime | None = None) -> FlushResult:
    """Plan new overage into the outbox, then send the outbox to the Stripe meter."""
    now = now or utcnow()
    planned = await plan(db, now=now)
    outcome = await send(db, stripe, now=now)
    async with db.unit() as session:
        pending = await repo.count_unsent(session)
    return FlushResult(
        planned=planned,
        sent=outcome.sent,
        rejected=outcome.rejected,
        pending=pending,
        failed=outcome.failed,
    )


async def plan(db: Database, *, now: datetime) -> int:
    """Write one outbox event per paid period whose overage grew; returns how many."""
    horizon = now - STRIPE_BACKDATE_LIMIT
    async with db.unit() as session:
        owing = await repo.periods_owing(session, now=now, horizon=horizon)
    planned = 0
    for period in owing:
        planned += await _plan_period(db, period, now=now, horizon=horizon)
    return planned


async def _plan_period(db: Database, seen: PeriodUsage, *, now: datetime, horizon: datetime) -> int:
    """Re-read one period under its lock and hand its new overage to the outbox (0 or 1 event)."""
    key = (seen.account_id, seen.period_start)
    async with db.unit() as session:
        if not await repo.lock_report(session, *key):
            return 0  # a concurrent flush is planning this period
        found = await repo.periods_owing(session, now=now, horizon=horizon, only=key)
        if not found:
            return 0  # planned meanwhile, or no longer owing
        period = found[0]
        added = await repo.add_event(session, _event(period, now=now))
        await repo.set_reported(session, *key, period.billable)
        return int(added)


def _event(period: PeriodUsage, *, now: datetime) -> MeterEvent:
    """The outbox event for units (reported, billable] of a period, timestamped inside it."""
    start = int(period.period_start.timestamp())
    return MeterEvent(
        identifier=f"am_{period.account_id}_{start}_{period.reported}_{period.billable}",
        account_id=period.account_id,
        stripe_customer_id=period.stripe_customer_id,
        period_start=period.period_start,
        value=period.billable - period.reported,
        event_time=min(now, period.period_end - timedelta(seconds=1)),
    )


async def send(db: Database, stripe: StripeClient, *, now: datetime | None = None) -> SendOutcome:
    """Send the outbox, customer by customer, until it is empty or Stripe fails."""
    async with db.unit() as session:
        stored = await billing_repo.get_settings(session)
        customers = await repo.pending_customers(
            session, limit=SEND_MAX_CUSTOMERS, now=now or utcnow()
        )
    event_name = stored.get(billing_repo.METER_EVENT_NAME) or DEFAULT_EVENT_NAME
    outcome = SendOutcome()
    for customer in customers:
        await _send_customer(
            db, stripe, customer, event_name=event_name, outcome=outcome, now=now or utcnow()
        )
        if outcome.failed:
            break
    return outcome


async def _send_customer(
    db: Database,
    stripe: StripeClient,
    customer: str,
    *,
    event_name: str,
    outcome: SendOutcome,
    now: datetime,
) -> None:
    """Send one customer's unsent events in order, marking each as Stripe acknowledges it."""
    async with db.unit() as session:
        if not await repo.lock_customer(session, customer):
            return  # a concurrent flush is sending this customer's events
        for event in await repo.unsent_events(session, customer, now=now):
            try:
                await _create(stripe, event, event_name=event_name)
            except InvalidRequestError as exc:
                if not is_duplicate(exc):
                    outcome.rejected += 1
                    logger.error("meter event %s refused: %s", event.identifier, exc)
                    await repo.mark_refused(session, event.identifier, now, str(exc))
                    continue
                logger.info("meter event %s was already at Stripe", event.identifier)
            except StripeError as exc:
                outcome.failed = type(exc).__name__
                logger.warning("Stripe failed; meter events wait for the next flush: %s", exc)
                return
            await repo.mark_sent(session, event.identifier, utcnow())
            outcome.sent += 1


async def _create(stripe: StripeClient, event: MeterEvent, *, event_name: str) -> None:
    """One v1 meter event (the library retries network errors with the same idempotency key)."""
    await stripe.v1.billing.meter_events.create_async(
        {
            "event_name": event_name,
            "payload": {"stripe_customer_id": event.stripe_customer_id, "value": str(event.value)},
            "identifier": event.identifier,
            "timestamp": int(event.event_time.timestamp()),
        }
    )


def is_duplicate(exc: InvalidRequestError) -> bool:
    """Stripe already holds an event with this identifier: it was sent before (acknowledged).

    Stripe answers 400 `invalid_request_error` "An event already exists with identifier <id>."
    (no documented error code; a code naming a duplicate is accepted too). Anything else is a
    real refusal: misreading one as a duplicate would drop billable units, so the match is strict.
    """
    message = (exc.user_message or "").lower()
    code = (exc.code or "").lower()
    return "duplicate" in code or ("already exists" in message and "identifier" in message)
