"""Accounts, keys and plans: sign-up, key lifecycle, the founder's plan controls.

Any change a warm key cache must notice bumps a policy version in Postgres and, once the request's
transaction has committed, publishes it to Redis (`PolicyVersions`).

Keys. A key is *live* while it is not revoked and its rotation's grace (`expires_at`), if any, has
not ended; suspended keys are live. Every change to an account's keys (create, revoke, rotate,
suspend) first locks the account row, then counts, so concurrent changes take turns and keep:
* at most `MAX_LIVE_KEYS` live keys (a rotated key counts until it expires, so rotating cannot
  multiply working keys);
* at least one *lasting* key (active, not rotated): the owner can never lock themselves out;
* no way around a suspension: a suspended account, or an account with a live suspended key,
  cannot create or rotate keys, and a suspended key cannot be revoked or rotated away.
An expired key is gone: not listed, not counted, and 404 to revoke or rotate.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as repo
from app.accounts.plans import PlanNotFound, plan_public
from app.accounts.schemas import (
    AccountPublic,
    KeyCreated,
    KeyPublic,
    KeyRotated,
    PeriodPublic,
)
from app.accounts.versions import PolicyVersions
from app.core.apikeys import display_prefix, generate_key, hash_key
from app.core.errors import AppError, Conflict, NotFound
from app.models import Account, ApiKey, new_id, utcnow
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
    default_message = (
        f"An account can hold at most {MAX_LIVE_KEYS} live keys (a rotated key counts until it "
        "expires); revoke one first."
    )


class LastKey(Conflict):
    code = "last_key"
    default_message = (
        "This is the account's last working key: revoking it would lock you out. Rotate it "
        "instead (POST /v1/keys/{id}/rotate), or create another key first."
    )


class KeyAlreadyRotated(Conflict):
    code = "key_already_rotated"
    default_message = "This key was already rotated; rotate its new key, or revoke this one."


class AccountSuspended(AppError):
    status_code = 403
    code = "account_suspended"
    default_message = "This account is suspended: its keys cannot be used or changed."


class AccountHasSuspendedKey(AppError):
    status_code = 403
    code = "account_has_suspended_key"
    default_message = (
        "A key of this account is suspended: the account cannot create or rotate keys until the "
        "suspension is lifted; contact support."
    )


class SuspendedKeyFrozen(AppError):
    status_code = 403
    code = "key_suspended"
    default_message = (
        "This key is suspended: it cannot be revoked or rotated until the suspension is lifted; "
        "contact support."
    )


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
    """The account's live keys (expired rotated keys are gone from the list)."""
    return await repo.list_keys(session, account.id, now=utcnow())


async def create_key(session: AsyncSession, account_id: str, *, name: str | None) -> KeyCreated:
    """A new key for the account (plaintext shown once), counted under the account's lock."""
    account, live = await _locked_keys(session, account_id, utcnow())
    await _check_may_mint(session, account)
    if len(live) >= MAX_LIVE_KEYS:
        raise KeyLimitReached()
    key, plaintext = _new_key(account_id, name)
    await repo.add(session, key)
    return KeyCreated(**key_public(key).model_dump(), api_key=plaintext)


async def revoke_key(
    session: AsyncSession, versions: PolicyVersions, *, account_id: str, key_id: str
) -> ApiKey:
    """Revoke one of the account's keys: it stops on the next request, on every instance."""
    account, live = await _locked_keys(session, account_id, utcnow())
    key = _live_key(live, key_id)
    _check_may_change(account, key)
    if not any(_lasting(other) for other in live if other.id != key.id):
        raise LastKey()  # a developer must never lock themselves out of their own account
    await repo.set_key_status(session, key, "revoked")
    await bump_account(session, versions, account_id)
    return key


async def rotate_key(
    session: AsyncSession,
    versions: PolicyVersions,
    *,
    account_id: str,
    key_id: str,
    grace_seconds: int,
) -> KeyRotated:
    """A new key replacing `key_id`, which keeps working for `grace_seconds`, then stops."""
    now = utcnow()
    account, live = await _locked_keys(session, account_id, now)
    old = _live_key(live, key_id)
    _check_may_change(account, old)
    if old.expires_at is not None:  # its end is set once: a cached expiry is never stale
        raise KeyAlreadyRotated(expires_at=old.expires_at.isoformat())
    await _check_may_mint(session, account)
    if grace_seconds > 0 and len(live) >= MAX_LIVE_KEYS:  # both keys live during the grace
        raise KeyLimitReached(
            f"An account can hold at most {MAX_LIVE_KEYS} live keys, and during its grace the "
            "rotated key still counts: revoke another key first, or rotate with grace_seconds 0."
        )
    new, plaintext = _new_key(account_id, old.name)
    old.expires_at = now + timedelta(seconds=grace_seconds)
    await repo.add(session, new, old)
    await bump_account(session, versions, account_id)  # warm caches reload the old key's end
    return KeyRotated(
        **key_public(new).model_dump(),
        api_key=plaintext,
        old_key_id=old.id,
        old_key_expires_at=old.expires_at,
    )


async def set_key_suspended(
    session: AsyncSession, versions: PolicyVersions, *, key_id: str, suspended: bool
) -> ApiKey:
    """Suspend a key or lift its suspension (founder); effective on its next request everywhere."""
    found = await repo.get_key(session, key_id)
    if found is None:
        raise KeyNotFound()
    await _locked_keys(session, found.account_id, utcnow())
    key = await repo.get_key(session, key_id)  # re-read under the account's lock
    if key is None or key.status == "revoked":
        raise KeyNotFound()  # an expired key can still be suspended or lifted: it is not gone
    status = "suspended" if suspended else "active"
    if key.status != status:
        await repo.set_key_status(session, key, status)
        await bump_account(session, versions, key.account_id)
    return key


async def set_account_suspended(
    session: AsyncSession, versions: PolicyVersions, *, account_id: str, suspended: bool
) -> Account:
    """Suspend an account or lift it (founder): every key stops (or works again) on its next
    request, on every instance, and a suspended account cannot mint keys."""
    account = await repo.lock_account(session, account_id)
    if account is None:
        raise AccountNotFound()
    status = "suspended" if suspended else "active"
    if account.status != status:
        account.status = status
        await repo.add(session, account)
        await bump_account(session, versions, account_id)
    return account


async def _locked_keys(
    session: AsyncSession, account_id: str, now: datetime
) -> tuple[Account, Sequence[ApiKey]]:
    """The account, locked, and its live keys read after the lock (so concurrent changes queue)."""
    account = await repo.lock_account(session, account_id)
    if account is None:
        raise AccountNotFound()
    return account, await repo.list_keys(session, account_id, now=now)


def _live_key(live: Sequence[ApiKey], key_id: str) -> ApiKey:
    """The live key with this id on the account; 404 for another account's, revoked or expired."""
    for key in live:
        if key.id == key_id:
            return key
    raise KeyNotFound()


def _lasting(key: ApiKey) -> bool:
    """A key that works now and will keep working (not suspended, not rotated away)."""
    return key.status == "active" and key.expires_at is None


def _check_may_change(account: Account, key: ApiKey) -> None:
    """No key changes on a suspended account, and no revoking or rotating a suspended key away."""
    if account.status == "suspended":
        raise AccountSuspended()
    if key.status == "suspended":
        raise SuspendedKeyFrozen()


async def _check_may_mint(session: AsyncSession, account: Account) -> None:
    """A suspended account, or one holding a suspended key (expired or not), gets no new key."""
    if account.status == "suspended":
        raise AccountSuspended()
    suspended = await repo.suspended_key_ids(session, account.id)
    if suspended:
        raise AccountHasSuspendedKey(suspended_keys=suspended)


async def bump_account(session: AsyncSession, versions: PolicyVersions, account_id: str) -> None:
    """Bump the account's policy version; published once the unit of work commits."""
    version = await repo.bump_account_version(session, account_id)
    versions.account_after_commit(session, account_id, version)


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
