"""The outbound-webhook outbox: events written in the same transaction as the change they report.

`enqueue` is the only entry point other domains use (inventory sync, product upserts, quota
notices). It fans the event out to every enabled endpoint subscribed to its type (one account's
endpoints, or every account's for catalog-wide events) as delivery rows; the `deliver-webhooks`
cron sends them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

EVENT_TYPES = ("inventory.updated", "product.updated", "usage.threshold")


async def enqueue(
    session: AsyncSession,
    *,
    event_type: str,
    data: dict[str, Any],
    account_id: str | None = None,
) -> int:
    """Queue one event for delivery (in the caller's transaction); returns deliveries created."""
    return 0  # placeholder until the webhooks package lands its outbox
