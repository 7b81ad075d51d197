"""The outbound-webhook outbox: events written in the same transaction as the change they report.

`enqueue` is the only entry point other domains use (inventory sync, product upserts, quota
notices). It fans the event out to every enabled endpoint subscribed to its type (one account's
endpoints, or every account's for catalog-wide events) as delivery rows; the `deliver-webhooks`
cron sends them (`app/webhooks/delivery.py`). An event nobody subscribes to writes nothing.

What a receiver gets (the Standard Webhooks payload shape), signed, with `webhook-id` = `id`:

    {"id": "msg_…", "type": "inventory.updated", "timestamp": "2031-05-17T12:00:00Z", "data": {…}}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import new_id, utcnow
from app.webhooks import repository as repo

EVENT_TYPES = ("inventory.updated", "product.updated", "usage.threshold")
TEST_EVENT_TYPE = "webhook.test"  # sent only by `POST /v1/webhooks/{id}/test`, to that endpoint


async def enqueue(
    session: AsyncSession,
    *,
    event_type: str,
    data: dict[str, Any],
    account_id: str | None = None,
) -> int:
    """Queue one event for delivery (in the caller's transaction); returns deliveries created."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoint_ids = await repo.subscribed_endpoints(session, event_type, account_id)
    if not endpoint_ids:
        return 0
    await repo.add_event(
        session,
        event_id=new_id("msg"),
        event_type=event_type,
        data=data,
        account_id=account_id,
        endpoint_ids=endpoint_ids,
        now=utcnow(),
    )
    return len(endpoint_ids)


async def enqueue_test(session: AsyncSession, *, endpoint_id: str, account_id: str) -> str:
    """A `webhook.test` event for one endpoint; returns its delivery id."""
    ids = await repo.add_event(
        session,
        event_id=new_id("msg"),
        event_type=TEST_EVENT_TYPE,
        data={"endpoint_id": endpoint_id, "message": "AgentMall test event"},
        account_id=account_id,
        endpoint_ids=[endpoint_id],
        now=utcnow(),
    )
    return ids[0]


async def usage_threshold(
    session: AsyncSession,
    *,
    account_id: str,
    threshold: int,
    used: int,
    quota: int,
    period_end: datetime,
) -> int:
    """`usage.threshold` for one account: it crossed `threshold` % of its quota this period.

    `data` = {"account_id", "threshold" (80/100/120), "used", "quota", "period_end" (ISO 8601)}."""
    data = {
        "account_id": account_id,
        "threshold": threshold,
        "used": used,
        "quota": quota,
        "period_end": period_end.isoformat().replace("+00:00", "Z"),
    }
    return await enqueue(session, event_type="usage.threshold", data=data, account_id=account_id)
