"""The founder's proof that billing adds up: per paid period, every stage of a call's money path.

For each paid period that is current (or ended within the last day, while its invoice closes):

    counted      what the gate counted (Redis, plus Postgres for other epochs): `/v1/usage`'s used
    provisional  of those, units in admission buckets still open to refunds (not billable yet)
    rolled_up    what the roll-up copied into Postgres
    settled      what billing reads (no refund can change it any more)
    billable     the overage of the settled units: max(0, settled - included calls)
    reported     overage handed to the meter outbox
    accepted     overage Stripe acknowledged

In a healthy system, after a roll-up and a flush, `accepted == reported == billable` and
`counted - provisional == settled`. Any other difference is either still in flight (`catching_up`:
units settled since the last roll-up or flush, events in the outbox younger than an hour) or a
fault (`mismatch`: more accepted than billable, which would be overbilling; settled above what the
gate counted; events Stripe refused; events unsent for over an hour; a period that ended over an
hour ago with overage not yet accepted, past Stripe's default invoice grace).

The `reconcile-billing` cron rolls up and flushes first, then checks: every `mismatch` is sent to
the founder (`FOUNDER_EMAIL` over SMTP when configured, else a log line at ERROR).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database
from app.metering import repository as repo
from app.models import utcnow
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort
from app.usage import service as usage

logger = logging.getLogger("agentmall.billing.reconcile")

OUTBOX_PATIENCE = timedelta(hours=1)  # an event unsent for longer is a fault, not a delay
INVOICE_GRACE = timedelta(hours=1)  # Stripe's default finalization grace after a period ends
RECENTLY_ENDED = timedelta(days=1)
MAX_PERIODS = 1_000


class PeriodReconciliation(BaseModel):
    account_id: str
    email: str
    plan: str
    period_start: datetime
    period_end: datetime
    included_calls: int
    counted: int
    provisional: int
    rolled_up: int
    settled: int
    billable: int
    reported: int
    accepted: int
    unsent: int
    difference: int  # billable - accepted: overage settled but not (yet) accepted by Stripe
    status: str  # ok | catching_up | mismatch
    problems: list[str]


class Reconciliation(BaseModel):
    checked_at: datetime
    live: bool  # False: Redis was unreachable; `counted` and `provisional` are Postgres's only
    periods: int
    mismatches: int
    data: list[PeriodReconciliation]


def _problems(ledger: repo.PeriodLedger, count: usage.LiveCount, now: datetime) -> list[str]:
    """The faults among the differences (none: only what is still in flight)."""
    billable = _billable(ledger)
    found = []
    if int(ledger.accepted) > billable:
        found.append("Stripe accepted more overage than was settled (overbilled)")
    if count.live and int(ledger.settled) > count.counted - count.provisional:
        found.append("more units settled than the gate counted")
    if int(ledger.refused):
        found.append(f"{int(ledger.refused)} meter event(s) refused by Stripe")
    if ledger.oldest_unsent and now - ledger.oldest_unsent > OUTBOX_PATIENCE:
        found.append("meter events unsent for over an hour")
    closed = now - ledger.period_end > INVOICE_GRACE
    if closed and billable > int(ledger.accepted):
        found.append("the period ended over an hour ago with overage not accepted by Stripe")
    return found


def _billable(ledger: repo.PeriodLedger) -> int:
    if not ledger.billed_per_call:
        return 0  # billed per contract, or a hard-gated plan: nothing goes to the meter
    return max(0, int(ledger.settled) - int(ledger.included_calls))


def _row(ledger: repo.PeriodLedger, count: usage.LiveCount, now: datetime) -> PeriodReconciliation:
    billable = _billable(ledger)
    problems = _problems(ledger, count, now)
    settled_all = count.counted - count.provisional == int(ledger.settled)
    in_step = billable == int(ledger.reported) == int(ledger.accepted)
    status = "mismatch" if problems else "ok" if in_step and settled_all else "catching_up"
    return PeriodReconciliation(
        account_id=ledger.account_id,
        email=ledger.email,
        plan=ledger.plan_code,
        period_start=ledger.period_start,
        period_end=ledger.period_end,
        included_calls=int(ledger.included_calls),
        counted=count.counted,
        provisional=count.provisional,
        rolled_up=int(ledger.rolled_up),
        settled=int(ledger.settled),
        billable=billable,
        reported=int(ledger.reported),
        accepted=int(ledger.accepted),
        unsent=int(ledger.unsent),
        difference=billable - int(ledger.accepted),
        status=status,
        problems=problems,
    )


async def reconcile(
    session: AsyncSession, redis: RedisPort, keys: RedisKeys, *, now: datetime | None = None
) -> Reconciliation:
    """Every paid period's figures, side by side, with a verdict each."""
    now = now or utcnow()
    ledgers = await repo.period_ledgers(
        session, now=now, ended_since=now - RECENTLY_ENDED, limit=MAX_PERIODS
    )
    counts = await usage.live_counts(
        session, redis, keys, [(ledger.account_id, ledger.period_start) for ledger in ledgers]
    )
    rows = [
        _row(ledger, counts[(ledger.account_id, ledger.period_start)], now) for ledger in ledgers
    ]
    return Reconciliation(
        checked_at=now,
        live=all(count.live for count in counts.values()),
        periods=len(rows),
        mismatches=sum(row.status == "mismatch" for row in rows),
        data=rows,
    )


async def check_and_alert(
    db: Database, redis: RedisPort, keys: RedisKeys, settings: Settings
) -> Reconciliation:
    """The cron's check: reconcile and tell the founder about every mismatch."""
    async with db.unit(read_only=True) as session:
        result = await reconcile(session, redis, keys)
    bad = [row for row in result.data if row.status == "mismatch"]
    if bad:
        await _alert(settings, bad)
    return result


async def _alert(settings: Settings, bad: list[PeriodReconciliation]) -> None:
    lines = [
        f"{row.account_id} ({row.email}), period from {row.period_start:%Y-%m-%d %H:%M}: "
        f"counted {row.counted}, settled {row.settled}, billable {row.billable}, "
        f"reported {row.reported}, accepted {row.accepted}: {'; '.join(row.problems)}"
        for row in bad
    ]
    text = "Billing does not add up for these paid periods:\n\n" + "\n".join(lines)
    from app.notices.email import SmtpMailer

    mailer = SmtpMailer.from_settings(settings)
    if mailer is not None and settings.FOUNDER_EMAIL:
        try:
            await mailer.send(settings.FOUNDER_EMAIL, "AgentMall: billing mismatch", text)
            logger.warning("billing mismatch in %d period(s): the founder was emailed", len(bad))
            return
        except Exception:  # the alert must still be seen: fall back to the log
            logger.exception("could not email the billing mismatch alert")
    logger.error(text)
