"""All SQL for billing: the bootstrap's Stripe ids, processed webhook events, paid periods."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.db import upsert_insert
from app.models import Account, BillingPeriod, BillingSetting, StripeEvent, utcnow

SETTINGS: sa.Table = cast(Any, BillingSetting).__table__
EVENTS: sa.Table = cast(Any, StripeEvent).__table__
PERIODS: sa.Table = cast(Any, BillingPeriod).__table__

# Keys of `billing_settings`, written by the bootstrap command.
PRODUCT_ID = "pro_product_id"
MONTHLY_PRICE_ID = "pro_monthly_price_id"
METERED_PRICE_ID = "pro_metered_price_id"
METER_ID = "meter_id"
METER_EVENT_NAME = "meter_event_name"


async def get_settings(session: AsyncSession) -> dict[str, str]:
    """Every stored Stripe id, by key."""
    rows = (await session.execute(select(BillingSetting))).scalars().all()
    return {row.key: row.value for row in rows}


async def put_settings(session: AsyncSession, values: dict[str, str]) -> None:
    """Store (or replace) Stripe ids."""
    for key, value in values.items():
        stmt = upsert_insert(session, SETTINGS).values(key=key, value=value, updated_at=utcnow())
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )


async def record_event(
    session: AsyncSession, *, event_id: str, event_type: str, account_id: str | None
) -> bool:
    """Record a webhook event once; False when it was already processed (a redelivery)."""
    stmt = upsert_insert(session, EVENTS).values(
        id=event_id, type=event_type, account_id=account_id, processed_at=utcnow()
    )
    result = await session.execute(stmt.on_conflict_do_nothing().returning(EVENTS.c.id))
    return result.first() is not None


async def account_for_update(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id, with_for_update=True, populate_existing=True)


async def account_by_customer(session: AsyncSession, customer_id: str) -> Account | None:
    result = await session.execute(
        select(Account).where(col(Account.stripe_customer_id) == customer_id).with_for_update()
    )
    return result.scalars().first()


async def put_billing_period(session: AsyncSession, period: BillingPeriod) -> None:
    """Record (or update) a paid period as Stripe reported it."""
    stmt = upsert_insert(session, PERIODS).values(
        account_id=period.account_id,
        period_start=period.period_start,
        period_end=period.period_end,
        plan_code=period.plan_code,
        stripe_customer_id=period.stripe_customer_id,
        updated_at=utcnow(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["account_id", "period_start"],
            set_={
                "period_end": stmt.excluded.period_end,
                "plan_code": stmt.excluded.plan_code,
                "stripe_customer_id": stmt.excluded.stripe_customer_id,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def set_customer_if_unset(session: AsyncSession, account_id: str, customer_id: str) -> None:
    """Remember the account's Stripe customer (a short UPDATE; an id already set stays)."""
    await session.execute(
        sa.update(Account)
        .where(col(Account.id) == account_id, col(Account.stripe_customer_id).is_(None))
        .values(stripe_customer_id=customer_id)
    )
