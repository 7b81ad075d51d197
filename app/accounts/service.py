"""Accounts, keys and plans: sign-up, key lifecycle, the founder's plan controls.

Any change a warm key cache must notice bumps a policy version in Postgres and, once the request's
transaction has committed, publishes it to Redis (`PolicyVersions`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as repo
from app.accounts.schemas import (
    AccountPublic,
    KeyCreated,
    KeyPublic,
    PeriodPublic,
    PlanPublic,
    PlanUpdate,
)
from app.accounts.versions import PolicyVersions
from app.core.apikeys import display_prefix, generate_key, hash_key
from app.core.errors import AppError, Conflict, NotFound
from app.core.features import MAX_COST
from app.models import Account, ApiKey, Plan, new_id, utcnow
from app.usage.period import current_period

FREE_PLAN = "free"
MAX_LIVE_KEYS = 10


class InvalidEmail(AppError):
    status_code = 422
    code = "invalid_email"
    default_message = "That is not a valid email address."


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "An account with this email already exists."


class KeyNotFound(NotFound):
    code = "key_not_found"
    default_message = "No API key with this id on your account."


class KeyLimitReached(Conflict):
    code = "key_limit_reached"
    default_message = f"An account can hold at most {MAX_LIVE_KEYS} live keys; revoke one first."


class LastKey(Conflict):
    code = "last_key"
    default_message = "This is the account's last live key; create another one before revoking it."


class PlanConflict(Conflict):
    code = "plan_conflict"
    default_message = "Another request changed this plan at the same moment; retry."


class PlanNotFound(NotFound):
    code = "plan_not_found"
    default_message = "No plan with this code."


class AccountNotFound(NotFound):
    code = "account_not_found"
    default_message = "No account with this id."


def normalise_email(raw: str) -> str:
    """One spelling per mailbox: NFKC and case-folded (so `ｆｏｏ@…` and `ß@…` can't duplicate)."""
    # imported on first use (sign-up, email changes): the product API starts without it
    from email_validator import EmailNotValidError, validate_email

    try:
        normalized = validate_email(raw.strip(), check_deliverability=False).normalized
        return unicodedata.normalize("NFKC", normalized).casefold()
    except EmailNotValidError as exc:
        raise InvalidEmail(f"That is not a valid email address: {exc}") from exc


def plan_public(plan: Plan) -> PlanPublic:
    return PlanPublic.model_validate(plan, from_attributes=True)


def key_public(key: ApiKey) -> KeyPublic:
    return KeyPublic.model_validate(key, from_attributes=True)


def _new_key(account_id: str, name: str | None) -> tuple[ApiKey, str]:
    plaintext = generate_key()
    key = ApiKey(
        id=new_id("key"),
        account_id=account_id,
        key_hash=hash_key(plaintext),
        prefix=display_prefix(plaintext),
        name=name,
    )
    return key, plaintext


async def signup(session: AsyncSession, *, email: str) -> tuple[Account, str]:
    """Create a free account and its first key; the plaintext key is returned once."""
    normalised = normalise_email(email)
    if await repo.get_account_by_email(session, normalised):
        raise EmailTaken()
    account = Account(id=new_id("acct"), email=normalised, plan_code=FREE_PLAN)
    key, plaintext = _new_key(account.id, "default")
    try:
        await repo.add(session, account)
        await repo.add(session, key)
    except IntegrityError as exc:  # a concurrent sign-up with the same email won the race
        raise EmailTaken() from exc
    return account, plaintext


async def account_view(session: AsyncSession, account: Account) -> AccountPublic:
    """The account with its plan and current period."""
    plan = await repo.get_plan(session, account.plan_code)
    assert plan is not None  # foreign key
    start, end = current_period(account.current_period_start, account.current_period_end, utcnow())
    return AccountPublic(
        id=account.id,
        email=account.email,
        role=account.role,
        plan=plan_public(plan),
        subscription_status=account.subscription_status,
        current_period=PeriodPublic(start=start, end=end),
        created_at=account.created_at,
    )


async def list_keys(session: AsyncSession, account: Account) -> Sequence[ApiKey]:
    return await repo.list_keys(session, account.id)


async def create_key(session: AsyncSession, account: Account, *, name: str | None) -> KeyCreated:
    """A new key for the account (plaintext shown once)."""
    if await repo.count_live_keys(session, account.id) >= MAX_LIVE_KEYS:
        raise KeyLimitReached()
    key, plaintext = _new_key(account.id, name)
    await repo.add(session, key)
    return KeyCreated(**key_public(key).model_dump(), api_key=plaintext)


async def set_key_status(
    session: AsyncSession,
    versions: PolicyVersions,
    *,
    key_id: str,
    status: str,
    account_id: str | None = None,
) -> ApiKey:
    """Revoke, suspend or unsuspend a key; effective on the next request on every instance."""
    key = await repo.get_key(session, key_id)
    if key is None or key.status == "revoked" or (account_id and key.account_id != account_id):
        raise KeyNotFound()
    if status == "revoked" and account_id and await repo.count_live_keys(session, account_id) <= 1:
        raise LastKey()  # a developer must never lock themselves out of their own account
    if key.status != status:
        await repo.set_key_status(session, key, status)
        await bump_account(session, versions, key.account_id)
    return key


async def bump_account(session: AsyncSession, versions: PolicyVersions, account_id: str) -> None:
    """Bump the account's policy version; published once the unit of work commits."""
    version = await repo.bump_account_version(session, account_id)
    versions.account_after_commit(session, account_id, version)


async def list_plans(session: AsyncSession) -> Sequence[Plan]:
    return await repo.list_plans(session, public_only=True)


class PlanUnusable(AppError):
    status_code = 422
    code = "plan_unusable"
    default_message = "The plan's limits are below the cost of one call of its own features."


def _check_usable(plan: Plan) -> None:
    """Refuse a plan that could never serve one call of a feature it sells."""
    ceiling = plan.requests_per_minute
    if plan.hard_limit:
        ceiling = min(ceiling, plan.included_calls)
    unusable = sorted(f for f in plan.features if MAX_COST.get(f, 1) > ceiling)
    if unusable:
        costs = ", ".join(f"{f} costs up to {MAX_COST[f]}" for f in unusable)
        raise PlanUnusable(
            f"One call of {costs} units, more than this plan allows "
            f"({plan.requests_per_minute} per minute"
            + (f", {plan.included_calls} per month" if plan.hard_limit else "")
            + "): raise the limits or drop the feature.",
            features=unusable,
            requests_per_minute=plan.requests_per_minute,
        )


async def upsert_plan(
    session: AsyncSession, versions: PolicyVersions, *, code: str, update: PlanUpdate
) -> Plan:
    """Create or change a plan; every account on it sees the change on its next request."""
    changes = update.model_dump(exclude_unset=True)
    plan = await repo.get_plan(session, code, for_update=True)
    if plan is None:
        missing = {"name", "included_calls", "requests_per_minute"} - changes.keys()
        if missing:
            raise AppError(
                f"A new plan needs {', '.join(sorted(missing))}.", missing=sorted(missing)
            )
        plan = Plan(code=code, **changes)
        plan.version = 1
    else:
        for field, value in changes.items():
            setattr(plan, field, value)
        plan.version += 1
    _check_usable(plan)
    plan.updated_at = utcnow()
    try:
        await repo.add(session, plan)
    except IntegrityError as exc:  # another request created the same plan a moment ago
        raise PlanConflict() from exc
    versions.plan_after_commit(session, code, plan.version)
    return plan


async def set_account_plan(
    session: AsyncSession, versions: PolicyVersions, *, account_id: str, plan_code: str
) -> Account:
    """Put an account on a plan (custom contracts); effective on its next request."""
    account = await repo.get_account(session, account_id)
    if account is None:
        raise AccountNotFound()
    if await repo.get_plan(session, plan_code) is None:
        raise PlanNotFound()
    account.plan_code = plan_code
    await repo.add(session, account)
    await bump_account(session, versions, account_id)
    await session.refresh(account)
    return account


async def set_subscription_status(
    session: AsyncSession, versions: PolicyVersions, *, account_id: str, status: str
) -> Account:
    """Record the subscription's status (Stripe webhooks); `past_due`/`unpaid` answer 402."""
    account = await repo.get_account(session, account_id)
    if account is None:
        raise AccountNotFound()
    account.subscription_status = status
    await repo.add(session, account)
    await bump_account(session, versions, account_id)
    return account
