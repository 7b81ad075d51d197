"""All SQL of outbound webhooks: endpoints, the event outbox, deliveries and attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Account,
    Plan,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_id,
)

WEBHOOKS_FEATURE = "webhooks"
E = WebhookEndpoint.__table__  # type: ignore[attr-defined]
D = WebhookDelivery.__table__  # type: ignore[attr-defined]
V = WebhookEvent.__table__  # type: ignore[attr-defined]
A = WebhookAttempt.__table__  # type: ignore[attr-defined]


# --- endpoints -------------------------------------------------------------------------------


async def lock_account(session: AsyncSession, account_id: str) -> None:
    """Serialise endpoint creation per account (the per-account cap holds under concurrency)."""
    accounts = Account.__table__  # type: ignore[attr-defined]
    query = sa.select(accounts.c.id).where(accounts.c.id == account_id).with_for_update()
    await session.execute(query)


async def count_endpoints(session: AsyncSession, account_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(E).where(E.c.account_id == account_id)
    return int((await session.execute(query)).scalar_one())


async def add_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    session.add(endpoint)
    await session.flush()


async def list_endpoints(session: AsyncSession, account_id: str) -> Sequence[WebhookEndpoint]:
    query = (
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id)  # type: ignore[arg-type]
        .order_by(E.c.created_at, E.c.id)
    )
    return (await session.execute(query)).scalars().all()


async def get_endpoint(
    session: AsyncSession, account_id: str, endpoint_id: str
) -> WebhookEndpoint | None:
    query = sa.select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id,  # type: ignore[arg-type]
        WebhookEndpoint.account_id == account_id,  # type: ignore[arg-type]
    )
    return (await session.execute(query)).scalars().first()


async def lock_endpoint(session: AsyncSession, endpoint_id: str) -> bool:
    """Lock the endpoint's row (False: it is gone). Every transaction that writes an endpoint's
    deliveries takes this lock first, so they queue instead of deadlocking."""
    query = sa.select(E.c.id).where(E.c.id == endpoint_id).with_for_update()
    return (await session.execute(query)).first() is not None


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    """The endpoint with its deliveries and their attempts (events stay: others may share them)."""
    await lock_endpoint(session, endpoint_id)
    await session.execute(sa.delete(A).where(A.c.endpoint_id == endpoint_id))
    await session.execute(sa.delete(D).where(D.c.endpoint_id == endpoint_id))
    await session.execute(sa.delete(E).where(E.c.id == endpoint_id))


async def list_attempts(
    session: AsyncSession, endpoint_id: str, *, limit: int, delivery_id: str | None = None
) -> Sequence[WebhookAttempt]:
    """The endpoint's attempts, newest first (optionally of one delivery)."""
    query = (
        sa.select(WebhookAttempt)
        .where(WebhookAttempt.endpoint_id == endpoint_id)  # type: ignore[arg-type]
        .order_by(A.c.id.desc())
        .limit(limit)
    )
    if delivery_id is not None:
        query = query.where(WebhookAttempt.delivery_id == delivery_id)  # type: ignore[arg-type]
    return (await session.execute(query)).scalars().all()


# --- the outbox ------------------------------------------------------------------------------


async def subscribed_endpoints(
    session: AsyncSession, event_type: str, account_id: str | None
) -> list[str]:
    """Ids of the enabled endpoints subscribed to `event_type` (one account's, or everyone's) whose
    account's plan still includes `webhooks` (a downgraded account's endpoints fall silent) and
    which is not suspended (the founder's suspension stops its events too)."""
    accounts, plans = Account.__table__, Plan.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(E.c.id, E.c.event_types, plans.c.features)
        .join(accounts, accounts.c.id == E.c.account_id)
        .join(plans, plans.c.code == accounts.c.plan_code)
        .where(E.c.enabled.is_(True), accounts.c.status != "suspended")
    )
    if account_id is not None:
        query = query.where(E.c.account_id == account_id)
    # FOR KEY SHARE: an endpoint deleted concurrently waits for this transaction instead of
    # breaking its delivery rows' foreign key (non-key updates of the endpoint do not wait).
    query = query.with_for_update(key_share=True, of=E)
    rows = (await session.execute(query)).all()
    return [
        row.id
        for row in rows
        if event_type in (row.event_types or []) and WEBHOOKS_FEATURE in (row.features or [])
    ]


async def add_event(
    session: AsyncSession,
    *,
    event_id: str,
    event_type: str,
    data: dict[str, Any],
    account_id: str | None,
    endpoint_ids: list[str],
    now: datetime,
) -> list[str]:
    """One event row and one pending delivery per endpoint, due at once; the deliveries' ids."""
    await session.execute(
        sa.insert(V).values(
            id=event_id, type=event_type, account_id=account_id, payload=data, created_at=now
        )
    )
    rows = [
        {
            "id": new_id("dlv"),
            "event_id": event_id,
            "endpoint_id": endpoint_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for endpoint_id in endpoint_ids
    ]
    if rows:
        await session.execute(sa.insert(D), rows)
    return [str(row["id"]) for row in rows]


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this run holds the lease of, with what it needs to send it."""

    delivery_id: str
    claim_token: str
    attempts: int  # made before this one
    endpoint_id: str
    url: str
    secret: str
    enabled: bool
    event_id: str
    event_type: str
    payload: dict[str, Any]
    event_created_at: datetime


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    token: str,
    limit: int,
    only: Sequence[str] | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries to `token` (rows another run holds are skipped).

    `FOR UPDATE SKIP LOCKED` keeps concurrent runs off each other's candidates on PostgreSQL; the
    conditional UPDATE (still pending, still due) makes the claim exact on SQLite too."""
    candidates = (
        sa.select(D.c.id)
        .where(D.c.status == "pending", D.c.next_attempt_at <= now)
        .order_by(D.c.next_attempt_at, D.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        candidates = candidates.where(D.c.id.in_(list(only)))
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    await session.execute(
        sa.update(D)
        .where(D.c.id.in_(ids), D.c.status == "pending", D.c.next_attempt_at <= now)
        .values(next_attempt_at=lease_until, claim_token=token)
    )
    query = (
        sa.select(
            D.c.id,
            D.c.attempts,
            E.c.id.label("endpoint_id"),
            E.c.url,
            E.c.secret,
            E.c.enabled,
            V.c.id.label("event_id"),
            V.c.type,
            V.c.payload,
            V.c.created_at,
        )
        .join(E, E.c.id == D.c.endpoint_id)
        .join(V, V.c.id == D.c.event_id)
        .where(D.c.claim_token == token)
        .order_by(D.c.next_attempt_at, D.c.id)
    )
    rows = (await session.execute(query)).all()
    return [
        Claimed(
            delivery_id=r.id,
            claim_token=token,
            attempts=r.attempts,
            endpoint_id=r.endpoint_id,
            url=r.url,
            secret=r.secret,
            enabled=r.enabled,
            event_id=r.event_id,
            event_type=r.type,
            payload=r.payload,
            event_created_at=_aware(r.created_at),
        )
        for r in rows
    ]


async def add_attempt(session: AsyncSession, attempt: WebhookAttempt) -> None:
    session.add(attempt)
    await session.flush()


async def settle_delivery(
    session: AsyncSession,
    claimed: Claimed,
    *,
    status: str,
    next_attempt_at: datetime | None,
    now: datetime,
) -> bool:
    """Record the outcome if the lease is still ours; False when another run took it over."""
    values: dict[str, Any] = {
        "status": status,
        "attempts": D.c.attempts + 1,
        "claim_token": None,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if status != "pending":
        values["finished_at"] = now
    result = await session.execute(
        sa.update(D)
        .where(D.c.id == claimed.delivery_id, D.c.claim_token == claimed.claim_token)
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def cancel_delivery(session: AsyncSession, claimed: Claimed, *, now: datetime) -> None:
    await session.execute(
        sa.update(D)
        .where(D.c.id == claimed.delivery_id, D.c.claim_token == claimed.claim_token)
        .values(status="cancelled", claim_token=None, finished_at=now)
    )


STREAK_GAP = timedelta(days=2)  # > the longest retry gap (10 h) and a daily (Hobby) cron


async def endpoint_succeeded(session: AsyncSession, endpoint_id: str) -> None:
    await session.execute(
        sa.update(E)
        .where(E.c.id == endpoint_id, E.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


async def endpoint_failed(session: AsyncSession, endpoint_id: str, *, now: datetime) -> datetime:
    """Start (or continue) the endpoint's failure streak; returns when it started. A streak is
    failing *continuously*: a failure after two days without any (longer than the longest retry
    gap) starts a new one, so an old streak never disables an endpoint on one new failure."""
    quiet = now - STREAK_GAP
    await session.execute(
        sa.update(E)
        .where(
            E.c.id == endpoint_id,
            sa.or_(
                E.c.failing_since.is_(None),
                E.c.last_failed_at.is_(None),
                E.c.last_failed_at < quiet,
            ),
        )
        .values(failing_since=now)
    )
    await session.execute(sa.update(E).where(E.c.id == endpoint_id).values(last_failed_at=now))
    query = sa.select(E.c.failing_since).where(E.c.id == endpoint_id)
    since = (await session.execute(query)).scalar_one_or_none()
    return _aware(since) if since is not None else now


async def disable_endpoint(
    session: AsyncSession, endpoint_id: str, *, reason: str, now: datetime
) -> bool:
    """Disable the endpoint and cancel its pending deliveries; False if it already was."""
    result = await session.execute(
        sa.update(E)
        .where(E.c.id == endpoint_id, E.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason[:200], disabled_at=now)
    )
    await session.execute(
        sa.update(D)
        .where(D.c.endpoint_id == endpoint_id, D.c.status == "pending")
        .values(status="cancelled", claim_token=None, finished_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def count_due(session: AsyncSession, *, now: datetime) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(D)
        .where(D.c.status == "pending", D.c.next_attempt_at <= now)
    )
    return int((await session.execute(query)).scalar_one())


def _aware(value: datetime) -> datetime:
    """A timestamp read through Core, made timezone-aware (SQLite drops the zone)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
