"""All SQL for usage: roll-ups, and requests served while Redis was unreachable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.db import upsert_insert
from app.models import Account, DegradedCall, UsageRollup, UsageSettlement, utcnow

DEGRADED_EPOCH = "pg"
ROLLUPS: sa.Table = cast(Any, UsageRollup).__table__
SETTLEMENTS: sa.Table = cast(Any, UsageSettlement).__table__
DEGRADED: sa.Table = cast(Any, DegradedCall).__table__


_CONFLICT = ["account_id", "period_start", "day", "endpoint", "epoch"]


async def write_snapshot(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store absolute counts read from Redis; an older snapshot never overwrites a newer one."""
    if not rows:
        return
    stmt = upsert_insert(session, ROLLUPS)
    table = ROLLUPS
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=_CONFLICT,
            set_={"count": stmt.excluded["count"], "seq": stmt.excluded.seq},
            where=table.c.seq <= stmt.excluded.seq,
        ),
        list(rows),
    )


async def write_settlements(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store settled totals read from Redis; an older snapshot never overwrites a newer one."""
    if not rows:
        return
    stmt = upsert_insert(session, SETTLEMENTS)
    table = SETTLEMENTS
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["account_id", "period_start", "epoch"],
            set_={
                "settled": stmt.excluded.settled,
                "seq": stmt.excluded.seq,
                "updated_at": stmt.excluded.updated_at,
            },
            where=table.c.seq <= stmt.excluded.seq,
        ),
        [{**row, "updated_at": utcnow()} for row in rows],
    )


def settled_units(account_id: Any, period_start: Any) -> Any:
    """SQL for a period's settled units (what billing reads): the settled totals of every Redis
    epoch plus the calls served while Redis was away and since settled into epoch "pg"."""
    settled = (
        select(sa.func.coalesce(sa.func.sum(col(UsageSettlement.settled)), 0))
        .where(
            col(UsageSettlement.account_id) == account_id,
            col(UsageSettlement.period_start) == period_start,
        )
        .scalar_subquery()
    )
    degraded = (
        select(sa.func.coalesce(sa.func.sum(col(UsageRollup.count)), 0))
        .where(
            col(UsageRollup.account_id) == account_id,
            col(UsageRollup.period_start) == period_start,
            col(UsageRollup.epoch) == DEGRADED_EPOCH,
        )
        .scalar_subquery()
    )
    return settled + degraded


async def add_count(
    session: AsyncSession,
    *,
    account_id: str,
    period_start: datetime,
    day: date,
    endpoint: str,
    units: int,
) -> None:
    """Add units to the Postgres-only epoch (settled requests served while Redis was away)."""
    stmt = upsert_insert(session, ROLLUPS)
    table = ROLLUPS
    await session.execute(
        stmt.values(
            account_id=account_id,
            period_start=period_start,
            day=day,
            endpoint=endpoint,
            epoch=DEGRADED_EPOCH,
            count=units,
            seq=0,
        ).on_conflict_do_update(
            index_elements=_CONFLICT, set_={"count": table.c["count"] + stmt.excluded["count"]}
        )
    )


async def rolled_up_total(session: AsyncSession, *, account_id: str, period_start: datetime) -> int:
    """Units in Postgres for the period: rolled-up counters plus unsettled degraded calls."""
    rolled = (
        select(sa.func.coalesce(sa.func.sum(UsageRollup.count), 0))
        .where(
            col(UsageRollup.account_id) == account_id,
            col(UsageRollup.period_start) == period_start,
        )
        .scalar_subquery()
    )
    pending = (
        select(sa.func.coalesce(sa.func.sum(DegradedCall.units), 0))
        .where(
            col(DegradedCall.account_id) == account_id,
            col(DegradedCall.period_start) == period_start,
            col(DegradedCall.units) > 0,  # a void counts only once settled (Redis may not have)
        )
        .scalar_subquery()
    )
    return int(await session.scalar(select(rolled + pending)) or 0)


async def record_degraded(session: AsyncSession, call: DegradedCall) -> None:
    """Keep a request served while Redis was away; the same request id is kept once."""
    stmt = upsert_insert(session, DEGRADED)
    values = {c.name: getattr(call, c.name) for c in DEGRADED.columns}
    await session.execute(stmt.values(**values).on_conflict_do_nothing())


async def pending_degraded(session: AsyncSession, *, limit: int) -> Sequence[DegradedCall]:
    """The oldest unsettled degraded calls, locked (a concurrent run skips them)."""
    result = await session.execute(
        select(DegradedCall)
        .order_by(col(DegradedCall.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return result.scalars().all()


async def delete_degraded(session: AsyncSession, request_ids: Sequence[str]) -> None:
    await session.execute(sa.delete(DEGRADED).where(DEGRADED.c.request_id.in_(request_ids)))


async def period_degraded(
    session: AsyncSession, *, account_id: str, period_start: datetime
) -> Sequence[DegradedCall]:
    result = await session.execute(
        select(DegradedCall).where(
            col(DegradedCall.account_id) == account_id,
            col(DegradedCall.period_start) == period_start,
            col(DegradedCall.units) > 0,  # a void counts only once settled (Redis may not have)
        )
    )
    return result.scalars().all()


async def accounts_by_id(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """(email, plan) of each account, by id."""
    result = await session.execute(
        select(col(Account.id), col(Account.email), col(Account.plan_code)).where(
            col(Account.id).in_(account_ids)
        )
    )
    return {a: (e, p) for a, e, p in result.all()}


async def period_rows(
    session: AsyncSession, *, account_id: str, period_start: datetime
) -> Sequence[UsageRollup]:
    result = await session.execute(
        select(UsageRollup).where(
            col(UsageRollup.account_id) == account_id,
            col(UsageRollup.period_start) == period_start,
        )
    )
    return result.scalars().all()


async def period_totals(
    session: AsyncSession, periods: Sequence[tuple[str, datetime]]
) -> tuple[dict[tuple[str, datetime], dict[str, int]], dict[tuple[str, datetime], int]]:
    """For many (account, period start) at once, in two statements: the rolled-up units by Redis
    epoch, and the units of degraded calls not settled yet (voids left out)."""
    if not periods:
        return {}, {}
    keys = [(a, p) for a, p in periods]
    r, d = col(UsageRollup.account_id), col(UsageRollup.period_start)
    rolled = await session.execute(
        select(r, d, col(UsageRollup.epoch), sa.func.sum(col(UsageRollup.count)))
        .where(sa.tuple_(r, d).in_(keys))
        .group_by(r, d, col(UsageRollup.epoch))
    )
    by_epoch: dict[tuple[str, datetime], dict[str, int]] = {}
    for account_id, start, epoch, units in rolled.all():
        by_epoch.setdefault((account_id, start), {})[epoch] = int(units)
    a, s = col(DegradedCall.account_id), col(DegradedCall.period_start)
    pending = await session.execute(
        select(a, s, sa.func.sum(col(DegradedCall.units)))
        .where(sa.tuple_(a, s).in_(keys), col(DegradedCall.units) > 0)
        .group_by(a, s)
    )
    return by_epoch, {(account_id, start): int(u) for account_id, start, u in pending.all()}


async def top_accounts(
    session: AsyncSession, *, since: datetime, limit: int
) -> list[tuple[str, str, str, int]]:
    """Heaviest accounts by rolled-up usage in periods starting at or after `since`."""
    used = sa.func.sum(col(UsageRollup.count)).label("used")
    result = await session.execute(
        select(col(Account.id), col(Account.email), col(Account.plan_code), used)
        .join(UsageRollup, col(UsageRollup.account_id) == col(Account.id))
        .where(col(UsageRollup.period_start) >= since)
        .group_by(col(Account.id), col(Account.email), col(Account.plan_code))
        .order_by(used.desc())
        .limit(limit)
    )
    return [(a, e, p, int(u)) for a, e, p, u in result.all()]
