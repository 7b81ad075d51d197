"""Quota notices: tell each account once per period when it crosses 80 % and 100 % of its quota
(and 120 % on soft-gated, paid plans), by email or, with no provider configured, a log line.

Exactly once per account, period and threshold: the crossed thresholds are first recorded
(`usage_notices`, insert-if-absent), then each account's unsent notices are locked, one email
tells the highest of them, and all of them are marked sent in the same transaction. A failed send
leaves them unsent for the next run; a notice marked sent is never sent again. Usage is what the
roll-up has copied into PostgreSQL (at most ~10 minutes behind Redis).
"""

from __future__ import annotations

import html
import itertools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database
from app.core.links import UPGRADE_TTL_S, upgrade_url
from app.models import utcnow
from app.notices import repository as repo
from app.notices.email import Mailer, MailError, SmtpMailer
from app.notices.repository import NoticeKey
from app.notices.schemas import DueAccount, Email, NoticeResult
from app.usage.period import month_bounds
from app.webhooks.outbox import usage_threshold

logger = logging.getLogger("agentmall.notices")

# (percent, soft-gated plans only), highest first.
LEVELS: tuple[tuple[int, bool], ...] = ((120, True), (100, False), (80, False))
MAX_ACCOUNTS_PER_RUN = 200  # emails per run, at most
# One account per transaction: its notices are marked sent in the commit right after its email,
# so a function killed mid-run (Vercel's maxDuration) re-sends at most the email in flight.
CLAIM_BATCH = 1
# No new send starts after this (plus one SMTP timeout of 10 s, it stays under the function's
# 30 s maxDuration); the rest waits for the next run.
RUN_BUDGET_S = 15.0
UPGRADE_PLAN = "pro"


def crossed(account: DueAccount) -> list[int]:
    """Every threshold the account's usage has reached, highest first."""
    return [
        pct
        for pct, soft_only in LEVELS
        if account.used * 100 >= account.included_calls * pct
        and not (soft_only and account.hard_limit)
    ]


async def notify(
    db: Database, settings: Settings, *, now: datetime | None = None, mailer: Mailer | None = None
) -> NoticeResult:
    """The `notify-usage` cron: record newly crossed thresholds, then send what is unsent."""
    now = now or utcnow()
    due = await _record_due(db, now)
    courier = _Courier(
        settings, mailer if mailer is not None else SmtpMailer.from_settings(settings)
    )
    for chunk in itertools.batched(due, CLAIM_BATCH):
        if courier.stopped:
            courier.result.deferred += len(chunk)
        else:
            await _deliver(db, list(chunk), courier)
    courier.result.checked = len(due)
    return courier.result


async def _record_due(db: Database, now: datetime) -> list[DueAccount]:
    """Accounts with a notice due, after recording every threshold they have crossed."""
    async with db.unit() as session:
        due = await repo.due_accounts(
            session, now=now, month=month_bounds(now), levels=LEVELS, limit=MAX_ACCOUNTS_PER_RUN
        )
        keys = [(a.account_id, a.period_start, pct) for a in due for pct in crossed(a)]
        recorded = await repo.record_notices(session, keys, utcnow())
        await _webhook_events(session, due, recorded)
    return due


async def _webhook_events(
    session: AsyncSession, due: list[DueAccount], recorded: list[NoticeKey]
) -> None:
    """A `usage.threshold` webhook event per newly crossed threshold, in the same transaction
    that records it (so each is queued once, whatever happens to the email)."""
    accounts = {(a.account_id, a.period_start): a for a in due}
    for account_id, period_start, threshold in recorded:
        account = accounts[(account_id, period_start)]
        await usage_threshold(
            session,
            account_id=account_id,
            threshold=threshold,
            used=account.used,
            quota=account.included_calls,
            period_end=account.period_end,
        )


async def _deliver(db: Database, chunk: list[DueAccount], courier: _Courier) -> None:
    """Lock the chunk's unsent notices, tell each account its highest, mark what went out."""
    async with db.unit() as session:
        claimed = await repo.claim_unsent(session, [(a.account_id, a.period_start) for a in chunk])
        pending: dict[tuple[str, datetime], list[repo.NoticeKey]] = defaultdict(list)
        for key in claimed:
            pending[(key[0], key[1])].append(key)
        done: list[repo.NoticeKey] = []
        for account in chunk:
            keys = pending.get((account.account_id, account.period_start))
            if keys and await courier.tell(account, max(k[2] for k in keys)):
                done.extend(keys)
        await repo.mark_sent(session, done, utcnow())


@dataclass
class _Courier:
    """Sends (or logs) notices and counts the outcome; stops sending once the provider fails
    or the run's time budget is spent (what is left waits for the next run)."""

    settings: Settings
    mailer: Mailer | None

    def __post_init__(self) -> None:
        self.result = NoticeResult()
        self.deadline = time.monotonic() + RUN_BUDGET_S
        self.halted = False

    @property
    def stopped(self) -> bool:
        """No more sends this run: the provider failed, or the time budget is spent."""
        return self.mailer is not None and (self.halted or time.monotonic() > self.deadline)

    async def tell(self, account: DueAccount, threshold: int) -> bool:
        """True once the account has been told (emailed, or logged without a provider)."""
        if self.mailer is None:
            _log_notice(account, threshold)
            self.result.logged += 1
            return True
        if self.stopped:
            self.result.deferred += 1
            return False
        return await self._send(self.mailer, account, threshold)

    async def _send(self, mailer: Mailer, account: DueAccount, threshold: int) -> bool:
        email = render(self.settings, account, threshold)
        try:
            await mailer.send(account.email, email.subject, email.text, email.html)
        except MailError as exc:
            return self._failed(account, threshold, str(exc), halt=not exc.permanent)
        except Exception as exc:  # a mailer bug must not lose the marks of what went out
            return self._failed(account, threshold, type(exc).__name__, halt=True)
        logger.info("quota notice sent: account=%s threshold=%s%%", account.account_id, threshold)
        self.result.sent += 1
        return True

    def _failed(self, account: DueAccount, threshold: int, why: str, *, halt: bool) -> bool:
        logger.warning(
            "quota notice not sent, will retry: account=%s threshold=%s%% (%s)",
            account.account_id,
            threshold,
            why,
        )
        self.result.failed += 1
        self.halted = self.halted or halt
        return False


def _log_notice(account: DueAccount, threshold: int) -> None:
    """The notice as a log line (no email provider): the account id, never the address."""
    logger.info(
        "quota notice (no email provider): account=%s threshold=%s%% used=%s of %s resets=%s",
        account.account_id,
        threshold,
        account.used,
        account.included_calls,
        iso_utc(account.period_end),
    )


def iso_utc(moment: datetime) -> str:
    """`2025-07-01T00:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def price_per_call(cents_per_1000: int, currency: str) -> str:
    """Integer cents per 1,000 calls as a price per call: 200, "usd" → "$0.002"."""
    amount = Decimal(cents_per_1000) / 100_000
    text = f"{amount.normalize():f}"
    if len(text.partition(".")[2]) < 2:
        text = f"{amount:.2f}"
    return f"${text}" if currency.lower() == "usd" else f"{text} {currency.upper()}"


def _beyond_quota(settings: Settings, account: DueAccount, threshold: int) -> list[str]:
    """What happens past the quota, for this plan (and the upgrade link when it blocks)."""
    if account.hard_limit and threshold < 100:
        return ["At 100% further calls are refused (429 quota_exceeded) until the quota resets."]
    if account.hard_limit:
        days = UPGRADE_TTL_S // 86_400
        return [
            "Further calls are refused (429 quota_exceeded) until the quota resets.",
            f"Upgrade to Pro in one click (the link is valid for {days} days):",
            upgrade_url(settings, account.account_id, UPGRADE_PLAN),
        ]
    if account.overage_cents_per_1000 is None:
        return ["Calls beyond the quota are still served and billed as your contract says."]
    price = price_per_call(account.overage_cents_per_1000, account.currency)
    return [f"Calls beyond the quota are still served and billed at {price} per call."]


def render(settings: Settings, account: DueAccount, threshold: int) -> Email:
    """The notice email: usage, percent, plan, reset time, and what happens past the quota."""
    percent = account.used * 100 // account.included_calls
    paragraphs = [
        "Hello,",
        f"Your AgentMall account {account.account_id} has used {account.used:,} API calls "
        f"this period: {percent}% of the {account.included_calls:,} included in its "
        f"{account.plan_name} plan.",
        f"Your quota resets at {iso_utc(account.period_end)} (UTC).",
        *_beyond_quota(settings, account, threshold),
        f"You get this email once per period at {_levels_text(account)} of your quota."
        "\nThe AgentMall team",
    ]
    subject = f"AgentMall: you have used {threshold}% of your monthly API quota"
    return Email(subject=subject, text="\n\n".join(paragraphs) + "\n", html=_html(paragraphs))


def _levels_text(account: DueAccount) -> str:
    """This plan's thresholds in words: 80% and 100% (hard-gated), or 80%, 100% and 120%."""
    levels = [f"{pct}%" for pct, soft in reversed(LEVELS) if not (soft and account.hard_limit)]
    return ", ".join(levels[:-1]) + " and " + levels[-1]


def _html(paragraphs: list[str]) -> str:
    """The same paragraphs as simple HTML (links clickable, everything escaped)."""
    parts = []
    for text in paragraphs:
        safe = html.escape(text).replace("\n", "<br>")
        if text.startswith(("https://", "http://")):
            safe = f'<a href="{safe}">{safe}</a>'
        parts.append(f"<p>{safe}</p>")
    return "<!doctype html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"
