"""The `deliver-webhooks` cron: send due deliveries, record every attempt, back off, give up.

Safe to run concurrently, twice, or again after a crash:

1. **Claim** (a short transaction): up to `CLAIM_BATCH` due, pending deliveries are selected
   `FOR UPDATE SKIP LOCKED` and leased to this run: `next_attempt_at` moves `LEASE` ahead and a
   fresh `claim_token` is written. Another run skips them (locked, then no longer due).
2. **Send** (no transaction open): the URL is checked again by the SSRF guard and the request goes
   to the address it checked (`app/webhooks/sender.py`), `CONCURRENCY` at a time, each bounded by
   `timeout`.
3. **Record** (one transaction per delivery): the attempt row, then the delivery's next state,
   only while this run still holds the lease (`claim_token`). A run that dies between 2 and 3
   leaves the lease to expire: the delivery is sent again (at least once; receivers de-duplicate
   on `webhook-id`).

Backoff (Standard Webhooks' schedule): attempt 1 at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h after each failure (8 attempts over ~28 h), then the delivery is `failed`. An endpoint
answering 410 Gone, or failing without a success for 5 days, is disabled with a reason and its
pending deliveries cancelled. No new batch is claimed after `budget_s` seconds. `now` (tests)
fixes the clock of the schedule; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database
from app.models import WebhookAttempt, utcnow
from app.webhooks import repository as repo
from app.webhooks import sender
from app.webhooks.guard import Resolver, UnsafeWebhookUrl, allowed_hosts, check_url, system_resolver
from app.webhooks.repository import Claimed

logger = logging.getLogger("agentmall.webhooks")

RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
DISABLE_AFTER = timedelta(days=5)
LEASE = timedelta(minutes=2)  # > one attempt (timeout) + recording; a crashed run's rows return
CLAIM_BATCH = 20
CONCURRENCY = 10
ATTEMPT_TIMEOUT_S = 10.0
RUN_BUDGET_S = 20.0

Kind = Literal["delivered", "retrying", "failed", "cancelled", "lost"]


class DeliveryResult(BaseModel):
    """What one run did."""

    job: Literal["deliver-webhooks"] = "deliver-webhooks"
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0  # failed this time, scheduled again
    failed: int = 0  # gave up (last attempt, or the endpoint answered 410)
    cancelled: int = 0  # endpoint disabled meanwhile
    endpoints_disabled: int = 0
    due: int = 0  # still due when the run ended
    stopped_early: bool = False  # the run-time budget ran out


async def deliver(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    resolver: Resolver | None = None,
    timeout: float = ATTEMPT_TIMEOUT_S,
    budget_s: float = RUN_BUDGET_S,
    only: Sequence[str] | None = None,
) -> DeliveryResult:
    """Claim due deliveries in batches, send them, record the outcomes (`only`: these ids)."""
    courier = _Courier(
        db, resolver or system_resolver, allowed_hosts(settings.WEBHOOK_ALLOW_HOSTS), timeout
    )
    started = time.monotonic()
    while True:
        if time.monotonic() - started >= budget_s:
            courier.result.stopped_early = True
            break
        at = now or utcnow()
        async with db.unit() as session:
            batch = await repo.claim_due(
                session,
                now=at,
                lease_until=at + LEASE,
                token=secrets.token_hex(16),
                limit=CLAIM_BATCH,
                only=only,
            )
        if not batch:
            break
        courier.result.claimed += len(batch)
        await courier.send_all(batch, at)
        if only is not None:
            break
    async with db.unit() as session:
        courier.result.due = await repo.count_due(session, now=now or utcnow())
    return courier.result


def payload(claimed: Claimed) -> bytes:
    """The body every endpoint of an event gets (the Standard Webhooks shape)."""
    stamp = claimed.event_created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = {
        "id": claimed.event_id,
        "type": claimed.event_type,
        "timestamp": stamp,
        "data": claimed.payload,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class _Courier:
    def __init__(
        self, db: Database, resolver: Resolver, allow: frozenset[str], timeout: float
    ) -> None:
        self.db = db
        self.resolver = resolver
        self.allow = allow
        self.timeout = timeout
        self.result = DeliveryResult()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def send_all(self, batch: list[Claimed], at: datetime) -> None:
        kinds = await asyncio.gather(
            *(self._one(claimed, at) for claimed in batch), return_exceptions=True
        )
        for claimed, kind in zip(batch, kinds, strict=True):
            if isinstance(kind, BaseException):  # its lease expires; a later run retries it
                logger.error("webhook delivery %s not recorded", claimed.delivery_id, exc_info=kind)
            elif kind != "lost":
                setattr(self.result, kind, getattr(self.result, kind) + 1)

    async def _one(self, claimed: Claimed, at: datetime) -> Kind:
        if not claimed.enabled:
            async with self.db.unit() as session:
                await repo.cancel_delivery(session, claimed, now=at)
            return "cancelled"
        async with self._slots:
            outcome = await self._attempt(claimed)
        async with self.db.unit() as session:
            return await self._record(session, claimed, outcome, at)

    async def _attempt(self, claimed: Claimed) -> sender.Outcome:
        """Check the URL again (fresh DNS answer), then send to the address just checked."""
        try:
            target = await check_url(claimed.url, self.resolver, self.allow)
        except UnsafeWebhookUrl as exc:
            return sender.Outcome(None, 0, f"refused: {exc.message}")
        return await sender.post(
            target,
            claimed.url,
            msg_id=claimed.event_id,
            secret=claimed.secret,
            body=payload(claimed),
            timeout=self.timeout,
        )

    async def _record(
        self, session: AsyncSession, claimed: Claimed, outcome: sender.Outcome, at: datetime
    ) -> Kind:
        if not await repo.lock_endpoint(session, claimed.endpoint_id):
            return "lost"  # deleted while the attempt was in flight
        number = claimed.attempts + 1
        attempt = WebhookAttempt(
            delivery_id=claimed.delivery_id,
            endpoint_id=claimed.endpoint_id,
            event_id=claimed.event_id,
            event_type=claimed.event_type,
            attempt=number,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error[:500] if outcome.error else None,
            succeeded=outcome.succeeded,
            created_at=at,
        )
        await repo.add_attempt(session, attempt)
        if outcome.succeeded:
            held = await repo.settle_delivery(
                session, claimed, status="delivered", next_attempt_at=None, now=at
            )
            await repo.endpoint_succeeded(session, claimed.endpoint_id)
            return "delivered" if held else "lost"
        if outcome.status_code == 410:
            held = await repo.settle_delivery(
                session, claimed, status="failed", next_attempt_at=None, now=at
            )
            await self._disable(session, claimed, "the endpoint answered 410 Gone", at)
            return "failed" if held else "lost"
        final = number >= MAX_ATTEMPTS
        held = await repo.settle_delivery(
            session,
            claimed,
            status="failed" if final else "pending",
            next_attempt_at=None if final else at + RETRY_SCHEDULE[number - 1],
            now=at,
        )
        since = await repo.endpoint_failed(session, claimed.endpoint_id, now=at)
        if at - since >= DISABLE_AFTER:
            reason = f"failing continuously since {since:%Y-%m-%d %H:%M} UTC"
            await self._disable(session, claimed, reason, at)
        if not held:
            return "lost"
        return "failed" if final else "retrying"

    async def _disable(
        self, session: AsyncSession, claimed: Claimed, reason: str, at: datetime
    ) -> None:
        if await repo.disable_endpoint(session, claimed.endpoint_id, reason=reason, now=at):
            self.result.endpoints_disabled += 1
            logger.warning("webhook endpoint %s disabled: %s", claimed.endpoint_id, reason)
