"""Property: a reader that follows the change feed from the start — while several writers commit
at once on real PostgreSQL, one of them holding its transaction open past the others — ends with
exactly the database's stock and price for every SKU, having been served every change once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import database_url
from tests.inventory.helpers import SYNC, database_state, follow, mirror
from tests.support.factories import ADMIN, make_account, product

SKUS = 8
Item = tuple[int, int, int | None]  # SKU index, stock, new price (None: keep)

items = st.lists(
    st.tuples(
        st.integers(0, SKUS - 1),
        st.integers(0, 30),
        st.one_of(st.none(), st.integers(100, 5000)),
    ),
    min_size=1,
    max_size=SKUS,
    unique_by=lambda item: item[0],
)
writers = st.lists(st.tuples(st.sampled_from(["sync", "upsert"]), items), min_size=2, max_size=6)


async def _write(client: AsyncClient, kind: str, skus: list[str], batch: list[Item]) -> None:
    await asyncio.sleep(0)  # let the writers and the reader interleave
    if kind == "sync":
        body: dict[str, Any] = {
            "items": [
                {"sku": skus[i], "stock": stock} | ({"price_cents": p} if p is not None else {})
                for i, stock, p in batch
            ]
        }
        response = await client.post(SYNC, json=body, headers=ADMIN)
    else:
        products = [product(skus[i], stock=stock, price_cents=p or 999) for i, stock, p in batch]
        response = await client.put(
            "/v1/admin/products", json={"products": products}, headers=ADMIN
        )
    assert response.status_code == 200, response.text


async def _hold(sku: str, stock: int) -> tuple[asyncpg.Connection, Any]:
    """A writer that takes its transaction id and change id now and commits only when told."""
    conn = await asyncpg.connect(database_url())
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("UPDATE inventory SET quantity = $1 WHERE sku = $2", stock, sku)
    await conn.execute(
        "INSERT INTO inventory_changes (sku, kind, stock, price_cents, currency, changed_at)"
        " VALUES ($1, 'inventory', $2, 1999, 'usd', now())",
        sku,
        stock,
    )
    return conn, transaction


async def _all_change_ids() -> set[int]:
    conn = await asyncpg.connect(database_url())
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM inventory_changes")}
    finally:
        await conn.close()


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=writers, held_stock=st.integers(0, 30))
async def test_feed_reconstructs_the_database_under_concurrent_writers(
    client: AsyncClient, plan: list[tuple[str, list[Item]]], held_stock: int
) -> None:
    prefix = f"P{uuid.uuid4().hex[:8]}"
    skus = [f"{prefix}-{i}" for i in range(SKUS)]
    held_sku = f"{prefix}-held"
    response = await client.put(
        "/v1/admin/products",
        json={"products": [product(s) for s in [*skus, held_sku]]},
        headers=ADMIN,
    )
    assert response.status_code == 200
    _, key = await make_account(client, plan="enterprise")
    served: list[dict[str, Any]] = []
    cursor: str | None = None
    writing = True

    async def read_while_writing() -> None:
        nonlocal cursor
        while writing:
            changes, cursor = await follow(client, key, cursor)
            served.extend(changes)
            await asyncio.sleep(0.01)

    reader = asyncio.create_task(read_while_writing())
    conn, transaction = await _hold(held_sku, held_stock)
    try:
        await asyncio.gather(*[_write(client, kind, skus, batch) for kind, batch in plan])
        await asyncio.sleep(0.01)  # the reader looks while the held writer is still open
    finally:
        await transaction.commit()
        await conn.close()
    writing = False
    await reader
    expected = await database_state()
    for _ in range(200):  # the horizon passes once every older transaction (anywhere) has ended
        changes, cursor = await follow(client, key, cursor)
        served.extend(changes)
        if mirror(served) == expected:
            break
        await asyncio.sleep(0.05)
    ids = [c["id"] for c in served]
    assert len(ids) == len(set(ids))  # no change served twice
    assert set(ids) == await _all_change_ids()  # and none skipped
    assert mirror(served) == expected
    assert mirror(served)[held_sku] == (held_stock, 1999)
