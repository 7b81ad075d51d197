"""All SQL for billing: the bootstrap's Stripe ids, processed webhook events, paid periods, open
Checkout Sessions and billing incidents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.db import upsert_insert
from app.models import (
    Account,
    ApiKey,
    BillingIncident,
    BillingPeriod,
    BillingSetting,
    CheckoutSession,
    StripeEvent,
    utcnow,
)

SETTINGS: sa.Table = cast(Any, BillingSetting).__table__
EVENTS: sa.Table = cast(Any, StripeEvent).__table__
PERIODS: sa.Table = cast(Any, BillingPeriod).__table__
INCIDENTS: sa.Table = cast(Any, BillingIncident).__table__

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


# -- Checkout Sessions ----------------------------------------------------------------------------


async def lock_checkout(session: AsyncSession, account_id: str) -> None:
    """Serialise "find an open session or create one" per account, until the transaction ends.

    An advisory lock, not the account's row lock: the holder waits on Stripe, and key
    revocations, suspensions and webhooks lock the account row; only other checkouts of the
    same account wait here (and then reuse what the holder created). SQLite (local development)
    has no advisory locks; its single process rarely races itself there."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        return
    key = sa.func.hashtextextended(f"agentmall:checkout:{account_id}", 0)
    await session.execute(select(sa.func.pg_advisory_xact_lock(key)))


async def open_checkout_session(
    session: AsyncSession, account_id: str, plan_code: str, *, open_until: datetime
) -> CheckoutSession | None:
    """The account's newest session for `plan_code` still open at `open_until`, if any."""
    result = await session.execute(
        select(CheckoutSession)
        .where(
            col(CheckoutSession.account_id) == account_id,
            col(CheckoutSession.plan_code) == plan_code,
            col(CheckoutSession.status) == "open",
            col(CheckoutSession.expires_at) > open_until,
        )
        .order_by(col(CheckoutSession.expires_at).desc())
        .limit(1)
    )
    return result.scalars().first()


async def add_checkout_session(session: AsyncSession, row: CheckoutSession) -> None:
    session.add(row)
    await session.flush()


async def close_checkout_session(session: AsyncSession, session_id: str, status: str) -> None:
    """Mark a session completed or expired (idempotent; both are final at Stripe)."""
    await session.execute(
        sa.update(CheckoutSession)
        .where(col(CheckoutSession.id) == session_id, col(CheckoutSession.status) == "open")
        .values(status=status)
    )


async def has_suspended_key(session: AsyncSession, account_id: str) -> bool:
    result = await session.execute(
        select(ApiKey.id)
        .where(col(ApiKey.account_id) == account_id, col(ApiKey.status) == "suspended")
        .limit(1)
    )
    return result.first() is not None


# -- incidents ------------------------------------------------------------------------------------


async def find_incident(
    session: AsyncSession, kind: str, subscription_id: str
) -> BillingIncident | None:
    result = await session.execute(
        select(BillingIncident).where(
            col(BillingIncident.kind) == kind,
            col(BillingIncident.subscription_id) == subscription_id,
        )
    )
    return result.scalars().first()


async def set_incident_refund(
    session: AsyncSession,
    incident_id: str,
    *,
    status: str,
    amount: int,
    currency: str | None,
    ids: list[str],
) -> None:
    """Record a refund made after the incident (a payment that completed later)."""
    await session.execute(
        sa.update(INCIDENTS)
        .where(INCIDENTS.c.id == incident_id)
        .values(refund_status=status, refunded_amount=amount, currency=currency, refund_ids=ids)
    )


async def add_incident(session: AsyncSession, incident: BillingIncident) -> bool:
    """Record an incident once per (kind, subscription); False when it was already there."""
    values = incident.model_dump()
    stmt = upsert_insert(session, INCIDENTS).values(**values)
    result = await session.execute(stmt.on_conflict_do_nothing().returning(INCIDENTS.c.id))
    return result.first() is not None


async def get_incident(session: AsyncSession, incident_id: str) -> BillingIncident | None:
    return await session.get(BillingIncident, incident_id)


async def list_incidents(
    session: AsyncSession,
    *,
    limit: int,
    after: BillingIncident | None = None,
    account_id: str | None = None,
) -> Sequence[BillingIncident]:
    """Incidents, newest first, after `after` (keyset pagination)."""
    created, ident = col(BillingIncident.created_at), col(BillingIncident.id)
    stmt = select(BillingIncident).order_by(created.desc(), ident.desc()).limit(limit)
    if after is not None:
        stmt = stmt.where(sa.tuple_(created, ident) < sa.tuple_(after.created_at, after.id))
    if account_id is not None:
        stmt = stmt.where(col(BillingIncident.account_id) == account_id)
    return (await session.execute(stmt)).scalars().all()


async def set_open_periods_plan(
    session: AsyncSession, account_id: str, plan_code: str, *, now: datetime
) -> None:
    """Give the account's paid periods that have not ended `plan_code` (what the flush bills by)."""
    await session.execute(
        sa.update(BillingPeriod)
        .where(col(BillingPeriod.account_id) == account_id, col(BillingPeriod.period_end) > now)
        .values(plan_code=plan_code, updated_at=now)
    )
