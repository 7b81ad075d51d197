"""All SQL of the inventory domain: the change log, the feed's page query, idempotency keys, and
the stock/price writes of a sync.

Every transaction that records changes calls `lock_feed` first, before it writes anything (so
before PostgreSQL gives it a transaction id): writers of stock, prices and products then run one
at a time, so their transaction ids, their change ids and their commits are all in the same order,
and two writers of one SKU can never be served in the opposite order to the one they committed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.versions import touch
from app.core.db import upsert_insert
from app.models import IdempotencyKey, Inventory, InventoryChange, Product, utcnow

CHANGES: sa.Table = cast(Any, InventoryChange).__table__
KEYS: sa.Table = cast(Any, IdempotencyKey).__table__
PRODUCTS: sa.Table = cast(Any, Product).__table__
INVENTORY: sa.Table = cast(Any, Inventory).__table__

# pg_advisory_xact_lock key of the change log ("aminvfee"); held until commit or rollback.
FEED_LOCK = 0x616D_696E_7666_6565
PRUNE_BATCH = 500  # idempotency keys deleted at most per sync


class FeedLockTooLate(RuntimeError):
    """`lock_feed` ran after the transaction had already written: a programming error."""


@dataclass(frozen=True)
class Change:
    """One effective change and the SKU's state after it."""

    sku: str
    kind: str  # inventory | product
    stock: int
    price_cents: int
    currency: str
    changed_at: datetime

    def as_event(self) -> dict[str, Any]:
        return asdict(self) | {"changed_at": self.changed_at.isoformat()}


@dataclass(frozen=True)
class SkuState:
    """A product's current price and stock, as a sync compares against."""

    sku: str
    price_cents: int
    currency: str
    stock: int


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def lock_feed(session: AsyncSession) -> None:
    """Serialise change-log writers (PostgreSQL; SQLite has one writer anyway). Must come first."""
    if not _is_postgres(session):
        return
    assigned = await session.scalar(sa.text("SELECT pg_current_xact_id_if_assigned()::text"))
    if assigned is not None:
        raise FeedLockTooLate("lock_feed must run before the transaction writes anything")
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK})


async def record(session: AsyncSession, changes: Sequence[Change]) -> None:
    """Append changes to the log, each stamped with this transaction's id on PostgreSQL (the
    column's default there too, so a writer outside this module cannot forget it)."""
    if not changes:
        return
    insert = sa.insert(CHANGES)
    if _is_postgres(session):
        insert = insert.values(txid=sa.text("pg_current_xact_id()::text::bigint"))
    await session.execute(insert, [asdict(c) for c in changes])


async def page(
    session: AsyncSession, *, after: tuple[int, int], limit: int
) -> list[InventoryChange]:
    """Up to `limit` changes after (`txid`, `id`) `after`, in (txid, id) order.

    On PostgreSQL only changes of transactions older than this statement's snapshot xmin are
    served: every transaction below xmin has ended, and every one still running or yet to start
    has an id ≥ xmin, so nothing can later appear before a position already served.
    """
    query = (
        sa.select(InventoryChange)
        .where(sa.tuple_(CHANGES.c.txid, CHANGES.c.id) > sa.tuple_(*after))
        .order_by(CHANGES.c.txid, CHANGES.c.id)
        .limit(limit)
    )
    if _is_postgres(session):
        horizon = sa.text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        query = query.where(CHANGES.c.txid < horizon)
    return list((await session.execute(query)).scalars())


async def states(session: AsyncSession, skus: Sequence[str]) -> dict[str, SkuState]:
    """Price, currency and stock of the SKUs that exist."""
    query = (
        sa.select(
            PRODUCTS.c.sku,
            PRODUCTS.c.price_cents,
            PRODUCTS.c.currency,
            sa.func.coalesce(INVENTORY.c.quantity, 0),
        )
        .select_from(PRODUCTS.outerjoin(INVENTORY, INVENTORY.c.sku == PRODUCTS.c.sku))
        .where(PRODUCTS.c.sku.in_(list(skus)))
    )
    rows = (await session.execute(query)).all()
    return {
        sku: SkuState(sku, int(price), currency, int(stock)) for sku, price, currency, stock in rows
    }


async def apply(session: AsyncSession, changes: Sequence[Change], *, prices: set[str]) -> None:
    """Write the new stock of every change, and the new price of the SKUs in `prices`."""
    if not changes:
        return
    stock = [{"sku": c.sku, "quantity": c.stock, "updated_at": c.changed_at} for c in changes]
    await write_stock(session, stock)
    priced = [
        {"b_sku": c.sku, "b_price": c.price_cents, "b_at": c.changed_at}
        for c in changes
        if c.sku in prices
    ]
    if priced:
        touch(session, (str(row["b_sku"]) for row in priced))
        update = (
            sa.update(PRODUCTS)
            .where(PRODUCTS.c.sku == sa.bindparam("b_sku"))
            .values(price_cents=sa.bindparam("b_price"), updated_at=sa.bindparam("b_at"))
        )
        await session.execute(update, priced)


# --- idempotency keys ------------------------------------------------------------------------


async def claim_key(session: AsyncSession, *, scope: str, key: str, request_hash: str) -> bool:
    """Insert the key (in flight); False when it exists. On PostgreSQL an insert racing an
    uncommitted twin waits for it to end, so a key is only ever seen committed."""
    stmt = upsert_insert(session, KEYS).values(
        scope=scope, key=key, request_hash=request_hash, created_at=utcnow()
    )
    result = await session.execute(
        stmt.on_conflict_do_nothing(index_elements=["scope", "key"]).returning(KEYS.c.key)
    )
    return result.first() is not None


async def get_key(session: AsyncSession, *, scope: str, key: str) -> IdempotencyKey | None:
    query = sa.select(IdempotencyKey).where(KEYS.c.scope == scope, KEYS.c.key == key)
    return (await session.execute(query)).scalars().first()


async def store_response(
    session: AsyncSession, *, scope: str, key: str, status_code: int, response: dict[str, Any]
) -> None:
    await session.execute(
        sa.update(KEYS)
        .where(KEYS.c.scope == scope, KEYS.c.key == key)
        .values(status_code=status_code, response=response)
    )


async def prune_keys(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete up to `PRUNE_BATCH` keys created before `older_than` (oldest first)."""
    old = (
        sa.select(KEYS.c.scope, KEYS.c.key)
        .where(KEYS.c.created_at < older_than)
        .order_by(KEYS.c.created_at)
        .limit(PRUNE_BATCH)
    )
    stale = (await session.execute(old)).all()
    if not stale:
        return 0
    await session.execute(
        sa.delete(KEYS).where(sa.tuple_(KEYS.c.scope, KEYS.c.key).in_([tuple(r) for r in stale]))
    )
    return len(stale)


async def write_stock(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Set the stock of SKUs: rows of {"sku", "quantity", "updated_at"}."""
    if not rows:
        return
    touch(session, (row["sku"] for row in rows))  # their versions change when this unit ends
    stmt = upsert_insert(session, INVENTORY)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["sku"],
            set_={"quantity": stmt.excluded.quantity, "updated_at": stmt.excluded.updated_at},
        ),
        list(rows),
    )
