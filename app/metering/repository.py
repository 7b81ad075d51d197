"""All SQL for metering: which paid periods owe overage, the per-period high-water mark
(`meter_reports`), and the meter-event outbox (`meter_events`).

Locks: a period is planned under a row lock on its `meter_reports` row (taken with SKIP LOCKED,
so a concurrent flush skips it), and a Stripe customer's events are sent under a transaction
advisory lock on the customer (so two flushes never call Stripe for one customer at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.db import upsert_insert
from app.models import (
    Account,
    BillingPeriod,
    MeterEvent,
    MeterReport,
    Plan,
    UsageRollup,
    utcnow,
)
from app.usage.repository import settled_units

REPORTS: sa.Table = cast(Any, MeterReport).__table__
EVENTS: sa.Table = cast(Any, MeterEvent).__table__


@dataclass(frozen=True)
class PeriodUsage:
    """A paid, soft-gated period with its usage, its plan's included calls and what was reported."""

    account_id: str
    period_start: datetime
    period_end: datetime
    stripe_customer_id: str
    included_calls: int
    total: int
    reported: int

    @property
    def billable(self) -> int:
        return max(0, self.total - self.included_calls)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind else "postgresql"


async def periods_owing(
    session: AsyncSession,
    *,
    now: datetime,
    horizon: datetime,
    only: tuple[str, datetime] | None = None,
) -> list[PeriodUsage]:
    """Started periods ending after `horizon` on a plan billed per call, whose settled overage
    exceeds what was reported (`only`: just that (account, period start))."""
    # settled units only: a call still open to a refund is never billed (app/usage/service.py)
    total = settled_units(col(BillingPeriod.account_id), col(BillingPeriod.period_start))
    reported = sa.func.coalesce(col(MeterReport.reported), 0)
    stmt = (
        sa.select(
            col(BillingPeriod.account_id),
            col(BillingPeriod.period_start),
            col(BillingPeriod.period_end),
            col(BillingPeriod.stripe_customer_id),
            col(Plan.included_calls),
            total,
            reported,
        )
        .join(Plan, col(Plan.code) == col(BillingPeriod.plan_code))
        .outerjoin(
            MeterReport,
            sa.and_(
                col(MeterReport.account_id) == col(BillingPeriod.account_id),
                col(MeterReport.period_start) == col(BillingPeriod.period_start),
            ),
        )
        .where(
            col(Plan.hard_limit).is_(False),
            col(Plan.overage_cents_per_1000).is_not(None),
            col(BillingPeriod.period_end) > horizon,
            col(BillingPeriod.period_start) <= now,
            total - col(Plan.included_calls) > reported,
        )
        .order_by(col(BillingPeriod.period_start), col(BillingPeriod.account_id))
    )
    if only is not None:
        stmt = stmt.where(
            col(BillingPeriod.account_id) == only[0], col(BillingPeriod.period_start) == only[1]
        )
    return [
        PeriodUsage(
            account_id=account,
            period_start=start,
            period_end=end,
            stripe_customer_id=customer,
            included_calls=int(included),
            total=int(used),
            reported=int(done),
        )
        for account, start, end, customer, included, used, done in await session.execute(stmt)
    ]


async def lock_report(session: AsyncSession, account_id: str, period_start: datetime) -> bool:
    """Create the period's high-water mark if missing and lock it; False when another flush holds
    it (it is planning this period right now)."""
    await session.execute(
        upsert_insert(session, REPORTS)
        .values(account_id=account_id, period_start=period_start, reported=0, updated_at=utcnow())
        .on_conflict_do_nothing()
    )
    locked = await session.execute(
        select(col(MeterReport.reported))
        .where(
            col(MeterReport.account_id) == account_id,
            col(MeterReport.period_start) == period_start,
        )
        .with_for_update(skip_locked=True)
    )
    return locked.first() is not None


async def set_reported(
    session: AsyncSession, account_id: str, period_start: datetime, reported: int
) -> None:
    """Move the period's high-water mark (its row is locked by `lock_report`)."""
    await session.execute(
        sa.update(REPORTS)
        .where(REPORTS.c.account_id == account_id, REPORTS.c.period_start == period_start)
        .values(reported=reported, updated_at=utcnow())
    )


async def add_event(session: AsyncSession, event: MeterEvent) -> bool:
    """Write an event to the outbox; False when its identifier is already there."""
    values = {c.name: getattr(event, c.name) for c in EVENTS.columns}
    result = await session.execute(
        upsert_insert(session, EVENTS)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(EVENTS.c.identifier)
    )
    return result.first() is not None


REFUSAL_RETRY = timedelta(days=1)


def _sendable(now: datetime) -> Any:
    """Unsent, and not refused by Stripe within the last day (refusals are retried daily)."""
    return sa.and_(
        col(MeterEvent.sent_at).is_(None),
        sa.or_(
            col(MeterEvent.refused_at).is_(None),
            col(MeterEvent.refused_at) < now - REFUSAL_RETRY,
        ),
    )


async def pending_customers(session: AsyncSession, *, limit: int, now: datetime) -> list[str]:
    """Stripe customers with sendable events, the longest-waiting first."""
    oldest = sa.func.min(col(MeterEvent.created_at))
    result = await session.execute(
        select(col(MeterEvent.stripe_customer_id))
        .where(_sendable(now))
        .group_by(col(MeterEvent.stripe_customer_id))
        .order_by(oldest, col(MeterEvent.stripe_customer_id))
        .limit(limit)
    )
    return list(result.scalars().all())


async def lock_customer(session: AsyncSession, customer_id: str) -> bool:
    """Take the customer's send lock until the transaction ends; False when another flush has it.

    SQLite (local development) serialises writers anyway and has no advisory locks."""
    if _dialect(session) == "sqlite":
        return True
    key = sa.func.hashtextextended(f"agentmall:meter:{customer_id}", 0)
    return bool(await session.scalar(select(sa.func.pg_try_advisory_xact_lock(key))))


async def unsent_events(
    session: AsyncSession, customer_id: str, *, now: datetime
) -> Sequence[MeterEvent]:
    """The customer's sendable events, oldest first, locked."""
    result = await session.execute(
        select(MeterEvent)
        .where(col(MeterEvent.stripe_customer_id) == customer_id, _sendable(now))
        .order_by(col(MeterEvent.created_at), col(MeterEvent.identifier))
        .with_for_update(skip_locked=True)
    )
    return result.scalars().all()


async def mark_sent(session: AsyncSession, identifier: str, at: datetime) -> None:
    """Record Stripe's acknowledgement of an event."""
    await session.execute(
        sa.update(EVENTS).where(EVENTS.c.identifier == identifier).values(sent_at=at)
    )


async def mark_refused(session: AsyncSession, identifier: str, at: datetime, why: str) -> None:
    """Record Stripe's refusal of an event (it is retried a day later)."""
    await session.execute(
        sa.update(EVENTS)
        .where(EVENTS.c.identifier == identifier)
        .values(refused_at=at, refusal=why[:500])
    )


async def count_unsent(session: AsyncSession) -> int:
    """Events waiting in the outbox."""
    stmt = select(sa.func.count()).select_from(EVENTS).where(EVENTS.c.sent_at.is_(None))
    return int(await session.scalar(stmt) or 0)


@dataclass(frozen=True)
class PeriodLedger:
    """One paid period's billing figures as Postgres holds them (the founder's reconciliation)."""

    account_id: str
    email: str
    plan_code: str
    period_start: datetime
    period_end: datetime
    included_calls: int
    billed_per_call: bool
    rolled_up: int  # every rolled-up unit (settled or not yet)
    settled: int  # what billing reads
    reported: int  # overage handed to the outbox
    accepted: int  # overage Stripe acknowledged
    unsent: int  # overage in the outbox, not yet acknowledged
    oldest_unsent: datetime | None
    refused: int  # events Stripe refused (kept, retried daily)


async def period_ledgers(
    session: AsyncSession, *, now: datetime, ended_since: datetime, limit: int
) -> list[PeriodLedger]:
    """Paid periods that have started and end after `ended_since`, with their figures."""
    bp = BillingPeriod
    rolled = (
        select(sa.func.coalesce(sa.func.sum(col(UsageRollup.count)), 0))
        .where(
            col(UsageRollup.account_id) == col(bp.account_id),
            col(UsageRollup.period_start) == col(bp.period_start),
        )
        .scalar_subquery()
    )

    def events(value: Any, *conditions: Any) -> Any:
        return (
            select(value)
            .where(
                col(MeterEvent.account_id) == col(bp.account_id),
                col(MeterEvent.period_start) == col(bp.period_start),
                *conditions,
            )
            .scalar_subquery()
        )

    total = sa.func.coalesce(sa.func.sum(col(MeterEvent.value)), 0)
    stmt = (
        sa.select(
            col(bp.account_id),
            col(Account.email),
            col(Account.plan_code),
            col(bp.period_start),
            col(bp.period_end),
            col(Plan.included_calls),
            sa.and_(col(Plan.hard_limit).is_(False), col(Plan.overage_cents_per_1000).is_not(None)),
            rolled,
            settled_units(col(bp.account_id), col(bp.period_start)),
            sa.func.coalesce(col(MeterReport.reported), 0),
            events(total, col(MeterEvent.sent_at).is_not(None)),
            events(total, col(MeterEvent.sent_at).is_(None)),
            events(sa.func.min(col(MeterEvent.created_at)), col(MeterEvent.sent_at).is_(None)),
            events(
                sa.func.count(),
                col(MeterEvent.sent_at).is_(None),
                col(MeterEvent.refused_at).is_not(None),
            ),
        )
        .join(Account, col(Account.id) == col(bp.account_id))
        .join(Plan, col(Plan.code) == col(bp.plan_code))
        .outerjoin(
            MeterReport,
            sa.and_(
                col(MeterReport.account_id) == col(bp.account_id),
                col(MeterReport.period_start) == col(bp.period_start),
            ),
        )
        .where(col(bp.period_start) <= now, col(bp.period_end) > ended_since)
        .order_by(col(bp.period_start), col(bp.account_id))
        .limit(limit)
    )
    return [PeriodLedger(*row) for row in (await session.execute(stmt)).all()]
