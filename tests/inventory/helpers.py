"""Helpers for the inventory tests: drive the sync, follow the feed, read the database."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from httpx import AsyncClient

from tests.conftest import database_url
from tests.support.factories import ADMIN, key_headers

SYNC = "/v1/admin/inventory/sync"
FEED = "/v1/inventory/changes"


async def sync(
    client: AsyncClient, items: list[dict[str, Any]], *, key: str | None = None
) -> dict[str, Any]:
    headers = ADMIN | ({"Idempotency-Key": key} if key else {})
    response = await client.post(SYNC, json={"items": items}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def follow(
    client: AsyncClient,
    api_key: str,
    cursor: str | None = None,
    *,
    limit: int = 100,
    at_least: int = 0,
) -> tuple[list[dict[str, Any]], str]:
    """Every change the feed serves after `cursor`; returns (changes, the last cursor).

    A committed change is served once every older transaction of the PostgreSQL cluster has
    ended (other test runs share it), so a test expecting `at_least` changes polls up to 10 s."""
    served: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get(FEED, params=params, headers=key_headers(api_key))
        assert response.status_code == 200, response.text
        page = response.json()
        served += page["data"]
        cursor = page["next_cursor"]
        if page["has_more"]:
            continue
        if len(served) >= at_least or time.monotonic() > deadline:
            return served, str(cursor)
        await asyncio.sleep(0.05)


def mirror(changes: list[dict[str, Any]], into: dict[str, tuple[int, int]] | None = None) -> Any:
    """Apply feed entries in order: SKU -> (stock, price_cents)."""
    state = {} if into is None else into
    for change in changes:
        state[change["sku"]] = (change["stock"], change["price_cents"])
    return state


async def database_state() -> dict[str, tuple[int, int]]:
    """SKU -> (stock, price_cents) as the database holds it now."""
    conn = await asyncpg.connect(database_url())
    try:
        rows = await conn.fetch(
            "SELECT p.sku, coalesce(i.quantity, 0) AS stock, p.price_cents FROM products p "
            "LEFT JOIN inventory i ON i.sku = p.sku"
        )
    finally:
        await conn.close()
    return {r["sku"]: (r["stock"], r["price_cents"]) for r in rows}


async def change_count() -> int:
    conn = await asyncpg.connect(database_url())
    try:
        return int(await conn.fetchval("SELECT count(*) FROM inventory_changes"))
    finally:
        await conn.close()
