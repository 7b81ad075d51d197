"""All SQL for usage roll-ups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.db import upsert_insert
from app.models import Account, UsageRollup

DEGRADED_EPOCH = "pg"
ROLLUPS: sa.Table = cast(Any, UsageRollup).__table__


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
            set_={"count": stmt.excluded["count"], "synced_at": stmt.excluded.synced_at},
            where=table.c.synced_at <= stmt.excluded.synced_at,
        ),
        list(rows),
    )


async def add_count(
    session: AsyncSession,
    *,
    account_id: str,
    period_start: datetime,
    day: date,
    endpoint: str,
    units: int,
) -> None:
    """Count units straight into Postgres (requests served while Redis was unreachable)."""
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
            synced_at=0,
        ).on_conflict_do_update(
            index_elements=_CONFLICT, set_={"count": table.c["count"] + stmt.excluded["count"]}
        )
    )


async def rolled_up_total(session: AsyncSession, *, account_id: str, period_start: datetime) -> int:
    total = await session.scalar(
        select(sa.func.coalesce(sa.func.sum(UsageRollup.count), 0)).where(
            col(UsageRollup.account_id) == account_id,
            col(UsageRollup.period_start) == period_start,
        )
    )
    return int(total or 0)


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
