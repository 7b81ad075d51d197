"""Every facet value carries its display name: a category its title, a brand its name as stored
(`attributes.brand`), over a query's ranking and over a plain listing, on both backends."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.catalog.search.support import search, upsert
from tests.support.factories import make_account, product

CATALOG = [
    product("FN-1", name="Named Gizmo", category="running-shoes", attributes={"brand": "Sonora"}),
    product("FN-2", name="Named Gizmo Pro", category="running-shoes",
            attributes={"brand": "Sonora"}),
    product("FN-3", name="Named Gizmo", category="headphones",
            attributes={"brand": "Stride & Co."}),
    product("FN-4", name="Named Gizmo", category="headphones", attributes={}),
]  # fmt: skip

EXPECTED = {
    "categories": [
        {"value": "headphones", "name": "Headphones", "count": 2},
        {"value": "running-shoes", "name": "Running Shoes", "count": 2},
    ],
    "brands": [
        {"value": "Sonora", "name": "Sonora", "count": 2},
        {"value": "Stride & Co.", "name": "Stride & Co.", "count": 1},
    ],
}


async def _check_facet_names(client: AsyncClient, key: str) -> None:
    await upsert(client, CATALOG)
    bodies: list[dict[str, Any]] = [
        {"query": "named gizmo"},  # facets of the ranked matches
        {"filters": {"categories": ["headphones", "running-shoes"]}},  # counted in SQL
        {"query": "named gizmo", "filters": {"brands": ["sonora", "stride & co."]}},
    ]
    for body in bodies:
        facets = (await search(client, key, body | {"facets": True}))["facets"]
        brands = [b for b in EXPECTED["brands"] if "brands" not in body.get("filters", {})
                  or b["value"].lower() in body["filters"]["brands"]]  # fmt: skip
        assert facets["brands"] == brands, body
        assert all(f["name"] for f in facets["brands"] + facets["categories"]), body
        if "brands" not in body.get("filters", {}):
            assert facets["categories"] == EXPECTED["categories"], body


async def test_facets_are_named(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    await _check_facet_names(client, key)


async def test_sqlite_facets_are_named(sqlite_client: tuple[AsyncClient, str]) -> None:
    await _check_facet_names(*sqlite_client)
