"""All SQL for accounts, API keys and plans. Functions flush; the request session commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.context import KeyContext, PlanPolicy
from app.models import Account, ApiKey, Plan, utcnow
from app.usage.period import current_period
from app.usage.repository import rolled_up_total


def plan_policy(plan: Plan) -> PlanPolicy:
    return PlanPolicy(
        code=plan.code,
        name=plan.name,
        included_calls=plan.included_calls,
        requests_per_minute=plan.requests_per_minute,
        features=frozenset(plan.features),
        hard_limit=plan.hard_limit,
        version=plan.version,
    )


async def load_key_context(
    session: AsyncSession, *, key_hash: str, now: datetime
) -> KeyContext | None:
    """Resolve a key hash to everything the gate needs (two queries; cached by the caller)."""
    row = await load_principal(session, key_hash)
    if row is None:
        return None
    key, account, plan = row
    period_start, _ = current_period(account.current_period_start, account.current_period_end, now)
    base_used = await rolled_up_total(session, account_id=account.id, period_start=period_start)
    return KeyContext(
        key_id=key.id,
        key_status=key.status,
        account_id=account.id,
        role=account.role,
        subscription_status=account.subscription_status,
        paid_period_start=account.current_period_start,
        paid_period_end=account.current_period_end,
        account_version=account.policy_version,
        plan=plan_policy(plan),
        base_period_start=period_start,
        base_used=base_used,
        expires_at=key.expires_at,
        account_status=account.status,
    )


async def load_principal(
    session: AsyncSession, key_hash: str
) -> tuple[ApiKey, Account, Plan] | None:
    """A key with its account and plan, in one query (the control plane reads them fresh)."""
    row = (
        await session.execute(
            select(ApiKey, Account, Plan)
            .join(Account, col(Account.id) == col(ApiKey.account_id))
            .join(Plan, col(Plan.code) == col(Account.plan_code))
            .where(col(ApiKey.key_hash) == key_hash)
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def get_account_by_email(session: AsyncSession, email: str) -> Account | None:
    return (await session.execute(select(Account).where(Account.email == email))).scalars().first()


async def add(session: AsyncSession, *rows: Account | ApiKey | Plan) -> None:
    session.add_all(rows)
    await session.flush()


async def bump_account_version(session: AsyncSession, account_id: str) -> int:
    """Increment the account's policy version (a change the gate must see) and return it."""
    version = await session.scalar(
        sa.update(Account)
        .where(col(Account.id) == account_id)
        .values(policy_version=col(Account.policy_version) + 1)
        .returning(col(Account.policy_version))
    )
    return int(version or 0)


async def lock_account(session: AsyncSession, account_id: str) -> Account | None:
    """The account, re-read and locked until the unit of work ends: key changes queue here."""
    if _dialect(session) == "sqlite":
        # SQLite has no row locks (FOR UPDATE is dropped); a write takes its single writer lock,
        # held to the end of the transaction, so the counts that follow cannot race either.
        await session.execute(
            sa.update(Account)
            .where(col(Account.id) == account_id)
            .values(status=col(Account.status))
            .execution_options(synchronize_session=False)
        )
    # FOR NO KEY UPDATE: it queues behind (and blocks) other changes to the account, billing's
    # FOR UPDATE included, but not the foreign-key checks of rows inserted for it elsewhere.
    return await session.get(
        Account, account_id, with_for_update={"key_share": True}, populate_existing=True
    )


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind else "postgresql"


def _live(account_id: str, now: datetime) -> list[sa.ColumnElement[bool]]:
    """A live key: not revoked and not past a rotation's grace (suspended keys are live)."""
    return [
        col(ApiKey.account_id) == account_id,
        col(ApiKey.status) != "revoked",
        sa.or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > now),
    ]


async def list_keys(session: AsyncSession, account_id: str, *, now: datetime) -> Sequence[ApiKey]:
    """The account's live keys, oldest first, as the database has them now."""
    result = await session.execute(
        select(ApiKey)
        .where(*_live(account_id, now))
        .order_by(col(ApiKey.created_at), col(ApiKey.id))
        .execution_options(populate_existing=True)  # not what this session read before a lock
    )
    return result.scalars().all()


async def get_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id, populate_existing=True)


async def suspended_key_ids(session: AsyncSession, account_id: str) -> list[str]:
    """The account's suspended keys, expired ones included: a suspension lasts until the founder
    lifts it, not until the key's rotation grace ends."""
    result = await session.execute(
        select(col(ApiKey.id)).where(
            col(ApiKey.account_id) == account_id, col(ApiKey.status) == "suspended"
        )
    )
    return list(result.scalars().all())


async def set_key_status(session: AsyncSession, key: ApiKey, status: str) -> None:
    key.status = status
    if status == "revoked":
        key.revoked_at = utcnow()
    session.add(key)
    await session.flush()


async def list_plans(session: AsyncSession, *, public_only: bool) -> Sequence[Plan]:
    query = select(Plan).order_by(col(Plan.included_calls))
    if public_only:
        query = query.where(col(Plan.public).is_(True))
    return (await session.execute(query)).scalars().all()


async def get_plan(session: AsyncSession, code: str, *, for_update: bool = False) -> Plan | None:
    """A plan; `for_update` locks its row so concurrent edits each get their own version."""
    return await session.get(Plan, code, with_for_update=for_update)
