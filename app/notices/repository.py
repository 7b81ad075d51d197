"""All SQL for quota notices: who has crossed a threshold, and the once-per-period ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import upsert_insert
from app.models import Account, DegradedCall, Plan, UsageNotice, UsageRollup, UTCDateTime
from app.notices.schemas import DueAccount

ACCOUNTS: sa.Table = cast(Any, Account).__table__
PLANS: sa.Table = cast(Any, Plan).__table__
ROLLUPS: sa.Table = cast(Any, UsageRollup).__table__
DEGRADED: sa.Table = cast(Any, DegradedCall).__table__
NOTICES: sa.Table = cast(Any, UsageNotice).__table__

# (percent, soft-gated plans only), highest first.
Levels = Sequence[tuple[int, bool]]
NoticeKey = tuple[str, datetime, int]  # (account id, period start, threshold)


def _periods(now: datetime, month: tuple[datetime, datetime]) -> sa.CTE:
    """Each account's current period, as `app.usage.period.current_period` chooses it."""
    a = ACCOUNTS.c
    paid = sa.and_(a.current_period_start <= now, a.current_period_end > now)  # NULL: not paid
    start = sa.case((paid, a.current_period_start), else_=sa.literal(month[0], UTCDateTime()))
    end = sa.case((paid, a.current_period_end), else_=sa.literal(month[1], UTCDateTime()))
    return sa.select(
        a.id.label("account_id"),
        a.email,
        a.plan_code,
        start.label("period_start"),
        end.label("period_end"),
    ).cte("periods")


def _usage(periods: sa.CTE) -> sa.Subquery:
    """Units per account in its current period: roll-ups plus unsettled degraded calls."""
    units = sa.union_all(
        sa.select(ROLLUPS.c.account_id, ROLLUPS.c.period_start, ROLLUPS.c["count"].label("n")),
        sa.select(
            DEGRADED.c.account_id, DEGRADED.c.period_start, DEGRADED.c.units.label("n")
        ).where(DEGRADED.c.units > 0),  # a void (failed call) counts only once settled
    ).subquery("units")
    on_period = sa.and_(
        units.c.account_id == periods.c.account_id, units.c.period_start == periods.c.period_start
    )
    return (
        sa.select(*periods.c, sa.func.sum(units.c.n).label("used"))
        .join(units, on_period)
        .group_by(*periods.c)
        .subquery("usage")
    )


def _top(used: Any, quota: Any, hard_limit: Any, levels: Levels) -> Any:
    """The highest threshold crossed (0 for none), in SQL."""
    quota = sa.cast(quota, sa.BigInteger)
    whens = [
        (sa.and_(used * 100 >= quota * pct, *([~hard_limit] if soft_only else [])), pct)
        for pct, soft_only in levels
    ]
    return sa.case(*whens, else_=0)


def _notice_exists(usage: Any, *conditions: Any) -> Any:
    n = NOTICES.c
    return sa.exists().where(
        n.account_id == usage.c.account_id, n.period_start == usage.c.period_start, *conditions
    )


async def due_accounts(
    session: AsyncSession,
    *,
    now: datetime,
    month: tuple[datetime, datetime],
    levels: Levels,
    limit: int,
) -> list[DueAccount]:
    """Accounts with a threshold crossed and not yet recorded, or with a notice still unsent;
    new work first (retries last, so a failing address never crowds out new notices)."""
    usage = _usage(_periods(now, month))
    p = PLANS.c
    graded = (
        sa.select(
            *usage.c,
            p.name.label("plan_name"),
            p.hard_limit,
            p.included_calls,
            p.overage_cents_per_1000,
            p.currency,
            _top(usage.c.used, p.included_calls, p.hard_limit, levels).label("top"),
        )
        .join(PLANS, p.code == usage.c.plan_code)
        .where(p.included_calls > 0)
        .subquery("graded")
    )
    unsent = _notice_exists(graded, NOTICES.c.sent_at.is_(None))
    recorded = _notice_exists(graded, NOTICES.c.threshold >= graded.c.top)
    query = (
        sa.select(graded)
        .where(graded.c.top > 0, sa.or_(~recorded, unsent))
        .order_by(unsent, graded.c.account_id)
        .limit(limit)
    )
    rows = (await session.execute(query)).mappings().all()
    fields = DueAccount.__dataclass_fields__
    return [DueAccount(**{k: v for k, v in row.items() if k in fields}) for row in rows]


async def record_notices(
    session: AsyncSession, keys: Sequence[NoticeKey], at: datetime
) -> list[NoticeKey]:
    """Record crossed thresholds (one already recorded for the period stays as it is); returns
    the ones recorded now."""
    if not keys:
        return []
    values = [
        {"account_id": a, "period_start": s, "threshold": t, "created_at": at, "sent_at": None}
        for a, s, t in keys
    ]
    n = NOTICES.c
    stmt = upsert_insert(session, NOTICES).values(values).on_conflict_do_nothing()
    result = await session.execute(stmt.returning(n.account_id, n.period_start, n.threshold))
    return [(a, s, t) for a, s, t in result.all()]


async def claim_unsent(
    session: AsyncSession, periods: Sequence[tuple[str, datetime]]
) -> list[NoticeKey]:
    """Unsent notices of these (account, period) pairs, locked until the transaction ends (a
    concurrent run skips them, and finds them sent once this one commits)."""
    if not periods:
        return []
    n = NOTICES.c
    query = (
        sa.select(n.account_id, n.period_start, n.threshold)
        .where(sa.tuple_(n.account_id, n.period_start).in_(list(periods)), n.sent_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    return [(a, s, t) for a, s, t in (await session.execute(query)).all()]


async def mark_sent(session: AsyncSession, keys: Sequence[NoticeKey], at: datetime) -> None:
    """Set `sent_at` on exactly these notices."""
    if not keys:
        return
    n = NOTICES.c
    await session.execute(
        sa.update(NOTICES)
        .where(sa.tuple_(n.account_id, n.period_start, n.threshold).in_(list(keys)))
        .where(n.sent_at.is_(None))
        .values(sent_at=at)
    )
