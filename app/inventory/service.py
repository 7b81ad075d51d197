"""Inventory: the founder's bulk stock/price sync (idempotent, change-logged) and the change feed.

A sync runs in the request's one transaction: it takes the change log's writer lock, compares each
item with the SKU's current stock and price, writes the effective changes, appends them to the
change log and queues one `inventory.updated` webhook event. Either all of it commits or none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.inventory import repository as repo
from app.inventory.feed import FeedCursors
from app.inventory.repository import Change
from app.inventory.schemas import ChangePage, ChangePublic, SyncItem, SyncRequest, SyncResult
from app.models import IdempotencyKey, utcnow
from app.webhooks.outbox import enqueue

SYNC_SCOPE = "inventory.sync"
KEY_RETENTION = timedelta(hours=48)  # promised: at least 24 h


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = (
        "This Idempotency-Key was already used with a different request body; use a new key."
    )


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still in progress; retry shortly."


@dataclass(frozen=True)
class SyncOutcome:
    result: SyncResult
    replayed: bool  # True: the stored response of an earlier request with the same key


def event_data(changes: Sequence[Change]) -> dict[str, Any]:
    """The webhook payload for a batch of changes."""
    return {"changes": [c.as_event() for c in changes]}


def _fingerprint(body: SyncRequest) -> str:
    """SHA-256 of the parsed body, so formatting and key order do not make a request different."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(stored: IdempotencyKey, fingerprint: str) -> SyncOutcome:
    if stored.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    if stored.status_code is None or stored.response is None:
        raise IdempotencyKeyInUse()
    return SyncOutcome(SyncResult.model_validate(stored.response), replayed=True)


async def sync(
    session: AsyncSession, body: SyncRequest, *, idempotency_key: str | None
) -> SyncOutcome:
    """Apply a stock (and price) sync once per idempotency key; unknown SKUs are reported."""
    fingerprint = _fingerprint(body)
    if idempotency_key:  # a committed key answers at once, without queueing behind writers
        stored = await repo.get_key(session, scope=SYNC_SCOPE, key=idempotency_key)
        if stored is not None:
            return _replay(stored, fingerprint)
    await repo.lock_feed(session)  # before any write: see app/inventory/repository.py
    await repo.prune_keys(session, older_than=utcnow() - KEY_RETENTION)
    if idempotency_key and not await repo.claim_key(
        session, scope=SYNC_SCOPE, key=idempotency_key, request_hash=fingerprint
    ):  # committed by a twin since our first look
        stored = await repo.get_key(session, scope=SYNC_SCOPE, key=idempotency_key)
        if stored is None:
            raise IdempotencyKeyInUse()
        return _replay(stored, fingerprint)
    result = await _apply(session, body.items)
    if idempotency_key:
        await repo.store_response(
            session,
            scope=SYNC_SCOPE,
            key=idempotency_key,
            status_code=200,
            response=result.model_dump(mode="json"),
        )
    return SyncOutcome(result, replayed=False)


async def _apply(session: AsyncSession, items: Sequence[SyncItem]) -> SyncResult:
    """Write and log the items that change something; report the rest."""
    current = await repo.states(session, [item.sku for item in items])
    now = utcnow()
    changes: list[Change] = []
    prices: set[str] = set()
    unchanged: list[str] = []
    not_found: list[str] = []
    for item in items:
        state = current.get(item.sku)
        if state is None:
            not_found.append(item.sku)
            continue
        price = state.price_cents if item.price_cents is None else item.price_cents
        if item.stock == state.stock and price == state.price_cents:
            unchanged.append(item.sku)
            continue
        if price != state.price_cents:
            prices.add(item.sku)
        changes.append(Change(item.sku, "inventory", item.stock, price, state.currency, now))
    await repo.apply(session, changes, prices=prices)
    await repo.record(session, changes)
    if changes:
        await enqueue(session, event_type="inventory.updated", data=event_data(changes))
    return SyncResult(updated=[c.sku for c in changes], unchanged=unchanged, not_found=not_found)


async def changes_page(
    session: AsyncSession, cursors: FeedCursors, *, cursor: str | None, limit: int
) -> ChangePage:
    """The next `limit` changes after `cursor` (from the start without one), in commit order."""
    after = cursors.decode(cursor)
    rows = await repo.page(session, after=after, limit=limit + 1)
    served = rows[:limit]
    position = (served[-1].txid, int(served[-1].id or 0)) if served else after
    return ChangePage(
        data=[ChangePublic.model_validate(row, from_attributes=True) for row in served],
        next_cursor=cursors.encode(position),
        has_more=len(rows) > limit,
    )
