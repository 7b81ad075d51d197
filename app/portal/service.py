"""The portal's logic: sign-in links, sessions, and what each page shows.

A sign-in link and a session are random tokens handed to the person (by email, in a cookie);
only their SHA-256 is stored, so a database leak signs nobody in. Every action on keys, billing
and webhooks goes through the same service functions as the API, with the same rules.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import plans as plans_service
from app.accounts import repository as accounts_repo
from app.accounts import service as accounts
from app.accounts.schemas import PlanPublic
from app.billing.offers import PURCHASABLE, SOLD_PLANS
from app.core.config import Settings
from app.core.errors import AppError, Unauthorized
from app.models import Account, ApiKey, Plan, utcnow
from app.portal import repository as repo
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort
from app.usage import service as usage
from app.usage.schemas import UsagePublic

logger = logging.getLogger("agentmall.portal")

LINK_TTL = timedelta(minutes=15)
SESSION_TTL = timedelta(days=7)
CSRF_CONTEXT = b"agentmall-portal-csrf-v1"
MAX_TOKEN_CHARS = 100  # a token we issue has 43; anything longer is not ours


class InvalidLink(AppError):
    status_code = 400
    code = "invalid_sign_in_link"
    default_message = (
        "This sign-in link was already used, has expired (links last 15 minutes) or is not one "
        "of ours. Ask for a new one."
    )


class CsrfRefused(AppError):
    status_code = 403
    code = "csrf_refused"
    default_message = (
        "This form has expired or did not come from this site. Reload the page and try again."
    )


class SignInRequired(Unauthorized):
    code = "sign_in_required"
    default_message = "Your session has ended. Sign in again."


class MailUnavailable(AppError):
    status_code = 503
    code = "email_unavailable"
    default_message = "The sign-in email could not be sent just now. Try again in a minute."


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def well_formed(token: str) -> bool:
    return 0 < len(token) <= MAX_TOKEN_CHARS and all(c.isalnum() or c in "-_" for c in token)


def csrf_token(settings: Settings, seed: str) -> str:
    """The form token for a browser: a MAC of its session id (or its pre-session cookie)."""
    mac = hmac.new(settings.signing_key(CSRF_CONTEXT), seed.encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_valid(settings: Settings, seed: str | None, presented: str | None) -> bool:
    if not seed or not presented:
        return False
    # Bytes, not str: `compare_digest` raises TypeError on a str with non-ASCII characters.
    expected = csrf_token(settings, seed).encode()
    return hmac.compare_digest(expected, presented.encode("utf-8", "replace"))


# --- sign-in links ---


def link_url(settings: Settings, token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/portal/auth/{token}"


async def send_link(session: AsyncSession, settings: Settings, email: str) -> None:
    """Store a new link for `email` and send it (SMTP_URL); on a developer's machine without
    SMTP_URL, log it instead (a deployment without it answers 503: a link is a credential).
    The same answer whether or not the email has an account: nobody learns who signed up."""
    from app.notices.email import MailError, SmtpMailer  # smtplib: on the first link only

    mailer = SmtpMailer.from_settings(settings)
    if mailer is None and (settings.on_vercel or settings.is_production):
        # A link is a credential: a deployment's logs are no place for it (local runs only).
        logger.error("sign-in link not sent: SMTP_URL is not set on this deployment")
        raise MailUnavailable("Sign-in by email is not set up on this deployment yet.")
    token = new_token()
    now = utcnow()
    await repo.add_link(session, digest(token), email, now + LINK_TTL)
    url = link_url(settings, token)
    if mailer is None:
        # Local runs (no SMTP_URL): the link is the way in, so it is printed for the developer.
        logger.warning("sign-in link for %s (no SMTP_URL set, so it is logged): %s", email, url)
        return
    text = (
        "Sign in to AgentMall with this link (it works once, for 15 minutes):\n\n"
        f"{url}\n\nIf you did not ask for it, ignore this email."
    )
    try:
        await mailer.send(email, "Your AgentMall sign-in link", text)
    except MailError as exc:
        logger.warning("sign-in link not sent: %s", exc)
        raise MailUnavailable() from exc


async def link_email(session: AsyncSession, token: str) -> str:
    """The email a usable link signs in (the link stays unused): for the confirmation page."""
    email = await repo.peek_link(session, digest(token), utcnow()) if well_formed(token) else None
    if email is None:
        raise InvalidLink()
    return email


@dataclass
class SignedIn:
    session_token: str
    account: Account
    first_key: str | None = None  # the new account's key, shown once


async def sign_in(session: AsyncSession, token: str, *, replaces: str | None) -> SignedIn:
    """Use the link (once) and open a new session; the first sign-in of a new email creates its
    free account. `replaces`: the browser's previous session cookie, ended now."""
    now = utcnow()
    email = await repo.use_link(session, digest(token), now) if well_formed(token) else None
    if email is None:
        raise InvalidLink()
    account = await accounts_repo.get_account_by_email(session, email)
    first_key = None
    if account is None:
        try:
            async with session.begin_nested():  # a failed insert leaves the link's use intact
                account, first_key = await accounts.signup(session, email=email)
        except accounts.EmailTaken:
            # Another link of this email made the account a moment ago (that answer showed its
            # first key): this link signs in to it.
            account = await accounts_repo.get_account_by_email(session, email)
            if account is None:
                raise
    if replaces:
        await repo.delete_session(session, digest(replaces))
    session_token = new_token()
    await repo.add_session(session, digest(session_token), account.id, now + SESSION_TTL)
    await repo.prune_links(session, now - timedelta(days=1))
    return SignedIn(session_token, account, first_key)


async def current_account(session: AsyncSession, session_token: str | None) -> Account:
    """The signed-in account, or `SignInRequired` (no cookie, unknown, expired or signed out)."""
    if not session_token or not well_formed(session_token):
        raise SignInRequired()
    account_id = await repo.session_account(session, digest(session_token), utcnow())
    account = await accounts_repo.get_account(session, account_id) if account_id else None
    if account is None:
        raise SignInRequired()
    return account


async def sign_out(session: AsyncSession, session_token: str) -> None:
    await repo.delete_session(session, digest(session_token))


async def sign_out_everywhere(session: AsyncSession, account_id: str) -> None:
    await repo.delete_sessions_of(session, account_id, utcnow())


# --- what the pages show ---


@dataclass
class DayBar:
    date: str
    count: int
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass
class Overview:
    account: Account
    plan: Plan
    usage: UsagePublic
    bars: list[DayBar] = field(default_factory=list)
    chart_max: int = 0
    upgrade_plans: list[PlanPublic] = field(default_factory=list)


CHART_W, CHART_H, CHART_PAD = 640, 160, 20
MAX_BAR_W = 40


def day_bars(usage_view: UsagePublic) -> tuple[list[DayBar], int]:
    """One bar per day of the period so far, scaled into the chart's box."""
    days = usage_view.daily
    top = max([d.count for d in days] + [1])
    slot = (CHART_W - 2 * CHART_PAD) / max(len(days), 1)
    width = min(slot * 0.8, MAX_BAR_W)
    bars = []
    for index, day in enumerate(days):
        height = (CHART_H - 2 * CHART_PAD) * day.count / top
        bars.append(
            DayBar(
                date=day.date.isoformat(),
                count=day.count,
                x=CHART_PAD + index * slot + (slot - width) / 2,
                y=CHART_H - CHART_PAD - height,
                width=width,
                height=height,
                label=f"{day.date:%b %d}: {day.count:,} calls",
            )
        )
    return bars, top


async def plan_of(session: AsyncSession, account: Account) -> Plan:
    plan = await accounts_repo.get_plan(session, account.plan_code)
    assert plan is not None  # foreign key
    return plan


async def plans_on_offer(session: AsyncSession) -> list[PlanPublic]:
    """The public plans, from the plans table (as `GET /v1/plans`)."""
    return [plans_service.plan_public(p) for p in await plans_service.list_plans(session)]


async def overview(
    session: AsyncSession, redis: RedisPort, keys: RedisKeys, account: Account
) -> Overview:
    """Plan, status and this period's usage, current to the gate's counters (as /v1/usage)."""
    plan = await plan_of(session, account)
    view = await usage.usage_view(session, redis, keys, account=account, plan=plan)
    bars, top = day_bars(view)
    upgrades = [
        p
        for p in await plans_on_offer(session)
        if p.code in PURCHASABLE and p.code != plan.code and account.plan_code in SOLD_PLANS
    ]
    return Overview(account, plan, view, bars, top, upgrades)


@dataclass
class KeyRow:
    key: ApiKey
    last_used_at: datetime | None


async def key_rows(
    session: AsyncSession, redis: RedisPort, keys: RedisKeys, account: Account
) -> list[KeyRow]:
    rows = await accounts.list_keys(session, account)
    used = await usage.last_used(redis, keys, account.id)
    return [KeyRow(k, used.get(k.id)) for k in rows]


def snippets(settings: Settings) -> dict[str, Any]:
    """How to call this deployment: the base URL filled into curl and MCP client settings."""
    base = settings.PUBLIC_BASE_URL
    return {"base": base, "mcp": f"{base}/mcp"}
