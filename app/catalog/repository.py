"""All SQL for products and their stock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.catalog.schemas import ProductIn
from app.catalog.search import repository as search_repo
from app.catalog.search.profile import learned_values_changed
from app.catalog.search.text import attribute_facts, product_vocabulary
from app.catalog.versions import touch
from app.core.db import upsert_insert
from app.inventory import repository as changelog
from app.inventory.repository import Change
from app.models import Inventory, Product, utcnow

ProductRow = tuple[Product, int]  # a product and its stock
PRODUCTS: sa.Table = cast(Any, Product).__table__
INVENTORY: sa.Table = cast(Any, Inventory).__table__


def _with_stock() -> Any:
    return select(Product, sa.func.coalesce(col(Inventory.quantity), 0)).outerjoin(
        Inventory, col(Inventory.sku) == col(Product.sku)
    )


# Built once, as Core (no ORM identity map or instance state for a read-only row): the hot read
# of every gated product request.
_GET = (
    sa.select(*PRODUCTS.c, sa.func.coalesce(INVENTORY.c.quantity, 0).label("stock"))
    .select_from(PRODUCTS.outerjoin(INVENTORY, INVENTORY.c.sku == PRODUCTS.c.sku))
    .where(sa.func.lower(PRODUCTS.c.sku) == sa.bindparam("lower_sku"))
    .order_by((PRODUCTS.c.sku == sa.bindparam("sku")).desc(), PRODUCTS.c.sku)
    .limit(1)
)


async def get(session: AsyncSession, sku: str) -> tuple[Any, int] | None:
    """The product with this SKU (its columns as attributes) and its stock, compared
    case-insensitively (an exact-case match first)."""
    result = await session.execute(_GET, {"lower_sku": sku.lower(), "sku": sku})
    row = result.first()
    return (row, int(row.stock)) if row else None


async def get_many(session: AsyncSession, skus: Sequence[str]) -> list[ProductRow]:
    query = _with_stock().where(col(Product.sku).in_(list(set(skus))))
    return [(p, int(s)) for p, s in (await session.execute(query)).all()]


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(sa.func.count()).select_from(Product)) or 0)


async def upsert(session: AsyncSession, items: Iterable[ProductIn]) -> tuple[int, int]:
    """Insert or update products by SKU (idempotent); returns (created, updated)."""
    created, updated, _ = await upsert_with_changes(session, items)
    return created, updated


async def upsert_with_changes(
    session: AsyncSession, items: Iterable[ProductIn]
) -> tuple[int, int, list[Change]]:
    """Insert or update products by SKU; returns (created, updated, effective changes).

    Every product created, or whose fields or stock end up different, is appended to the
    inventory change log (kind `product`) in this transaction, so the change feed replays
    catalog imports and upserts as well as stock syncs.
    """
    by_sku = {item.sku: item for item in items}  # last one wins within a batch
    if not by_sku:
        return 0, 0, []
    touch(session, by_sku)  # their versions change when this unit ends (app/catalog/versions.py)
    await changelog.lock_feed(session)  # before any write (see app/inventory/repository.py)
    before = await _snapshots(session, list(by_sku))
    now = utcnow()
    rows = [
        {
            "sku": item.sku,
            "name": item.name,
            "description": item.description,
            "category": item.category,
            "price_cents": item.price_cents,
            "currency": item.currency,
            "attributes": item.attributes,
            "created_at": now,
            "updated_at": now,
        }
        for item in by_sku.values()
    ]
    stmt = upsert_insert(session, PRODUCTS)
    changed = {k: stmt.excluded[k] for k in rows[0] if k not in {"sku", "created_at"}}
    await session.execute(stmt.on_conflict_do_update(index_elements=["sku"], set_=changed), rows)
    stock = [
        {"sku": item.sku, "quantity": item.stock, "updated_at": now}
        for item in by_sku.values()
        if item.stock is not None
    ]
    await changelog.write_stock(session, stock)
    changes = [
        change
        for item in by_sku.values()
        if (change := _product_change(item, before.get(item.sku), now)) is not None
    ]
    await changelog.record(session, changes)
    await _count_words(session, by_sku.values(), before)
    await session.flush()
    return len(by_sku) - len(before), len(before), changes


async def _count_words(
    session: AsyncSession, items: Iterable[ProductIn], before: dict[str, dict[str, Any]]
) -> None:
    """Keep the spelling word list and the learned attribute values exact: each word or value
    counts the products that have it, so a product renamed away from a word no longer makes it
    "known" or suggestible, and a value no product has is no longer read from queries."""
    words: dict[str, int] = {}
    facts: dict[tuple[str, str, str], int] = {}
    for item in items:
        old_row = before.get(item.sku)
        _diff(
            words,
            product_vocabulary(item.name, item.category, item.attributes),
            product_vocabulary(old_row["name"], old_row["category"], old_row["attributes"])
            if old_row
            else set(),
        )
        _diff(
            facts,
            attribute_facts(item.category, item.attributes),
            attribute_facts(old_row["category"], old_row["attributes"]) if old_row else set(),
        )
    await search_repo.count_words(session, words)
    await search_repo.count_attribute_facts(session, facts)
    if any(facts.values()):  # once committed: a search before that would cache the old ones
        event.listen(session.sync_session, "after_commit", _values_changed, once=True)


def _values_changed(_: Any) -> None:
    learned_values_changed()


def _diff(deltas: dict[Any, int], new: set[Any], old: set[Any]) -> None:
    for key in new - old:
        deltas[key] = deltas.get(key, 0) + 1
    for key in old - new:
        deltas[key] = deltas.get(key, 0) - 1


_COMPARED = ("name", "description", "category", "price_cents", "currency", "attributes")


async def _snapshots(session: AsyncSession, skus: list[str]) -> dict[str, dict[str, Any]]:
    """The compared fields and stock of the SKUs that exist (plain values, not ORM objects)."""
    columns = [PRODUCTS.c[name] for name in ("sku", *_COMPARED)]
    query = (
        sa.select(*columns, sa.func.coalesce(INVENTORY.c.quantity, 0).label("stock"))
        .select_from(PRODUCTS.outerjoin(INVENTORY, INVENTORY.c.sku == PRODUCTS.c.sku))
        .where(PRODUCTS.c.sku.in_(skus))
    )
    return {row.sku: dict(row._mapping) for row in (await session.execute(query)).all()}


def _product_change(item: ProductIn, before: dict[str, Any] | None, now: datetime) -> Change | None:
    """The change an upsert makes to one product, or None when it leaves it as it was."""
    stock_before = int(before["stock"]) if before else 0
    stock = stock_before if item.stock is None else item.stock
    if (
        before is not None
        and stock == stock_before
        and all(getattr(item, name) == before[name] for name in _COMPARED)
    ):
        return None
    return Change(item.sku, "product", stock, item.price_cents, item.currency, now)
