"""Listings without a query, filtered on stock: every page holds exactly the products of the
unfiltered listing (same sort) whose stock matches, in that order, whatever the share in stock.

The listing reads the other filters' matches a chunk at a time and checks each row's stock (then
leaves the rest to one filtered statement), so these catalogs put the matching products densely,
sparsely and only past the first chunks."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.catalog.search.support import search, upsert
from tests.support.factories import make_account, product, set_plan

SORTS = ["sku", "price_asc", "price_desc", "newest"]
Body = dict[str, Any]


@pytest.fixture
async def key(client: AsyncClient) -> str:
    await set_plan(client, "pro", requests_per_minute=100_000)
    _, api_key = await make_account(client, plan="pro")
    return api_key


def catalog(size: int, in_stock: Any) -> list[Body]:
    """`size` widgets (and a few gadgets the category filter leaves out); `in_stock(i)` says
    which widgets have stock. Prices repeat, so price orders break ties by SKU."""
    items = [
        product(
            f"WID-{i:04d}",
            category="widgets",
            price_cents=1000 + (i * 37) % 11 * 100,
            stock=3 if in_stock(i) else 0,
        )
        for i in range(size)
    ]
    return items + [product(f"GAD-{i}", category="gadgets", stock=i % 2) for i in range(5)]


async def walk(client: AsyncClient, key: str, body: Body, limit: int) -> list[Body]:
    seen: list[Body] = []
    cursor = None
    while True:
        page = await search(client, key, body | {"pagination": {"limit": limit, "cursor": cursor}})
        seen += page["products"]
        cursor = page["pagination"]["cursor"]
        if cursor is None:
            return seen


async def check(client: AsyncClient, key: str, limits: dict[bool, int]) -> None:
    for sort in SORTS:
        base: Body = {"filters": {"categories": ["widgets"]}, "sort": sort}
        everything = await walk(client, key, base, 100)
        for wanted, limit in limits.items():
            expected = [p["sku"] for p in everything if (p["stock"] > 0) is wanted]
            body = base | {"filters": {"categories": ["widgets"], "in_stock": wanted}}
            got = [p["sku"] for p in await walk(client, key, body, limit)]
            assert got == expected, (sort, wanted)
            first = await search(client, key, body | {"pagination": {"limit": limit}})
            assert first["pagination"]["total_count"] == len(expected), (sort, wanted)


DENSE = {True: 7, False: 7}
# Pages of 1 read chunks of 14, 56 and 224 rows (the page size + 1, doubled, + 10, then ×4): none
# of the 400 widgets in SKU order before the ten in stock, so one filtered statement ends the page
SPARSE = {True: 1, False: 50}
STOCK_PATTERNS = {
    "most in stock, a few not": (120, lambda i: i % 9 != 4, DENSE),
    "one in seven in stock": (120, lambda i: i % 7 == 3, DENSE),
    "in stock only at the end": (400, lambda i: i >= 390, SPARSE),
}


@pytest.mark.parametrize("pattern", sorted(STOCK_PATTERNS))
async def test_pg_stock_filtered_listings_page_through_exactly_the_matches(
    client: AsyncClient, key: str, pattern: str
) -> None:
    size, in_stock, limits = STOCK_PATTERNS[pattern]
    await upsert(client, catalog(size, in_stock))
    await check(client, key, limits)


@pytest.mark.parametrize("pattern", sorted(STOCK_PATTERNS))
async def test_sqlite_stock_filtered_listings_page_through_exactly_the_matches(
    sqlite_client: tuple[AsyncClient, str], pattern: str
) -> None:
    client, key = sqlite_client
    size, in_stock, limits = STOCK_PATTERNS[pattern]
    await upsert(client, catalog(size, in_stock))
    await check(client, key, limits)
