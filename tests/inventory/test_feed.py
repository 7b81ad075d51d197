"""`GET /v1/inventory/changes`: gated and metered, cursor-paginated in commit order, tamper-evident
cursors, and a change whose transaction commits late is served late, never skipped."""

from __future__ import annotations

import base64
import json

import asyncpg
import pytest
from httpx import AsyncClient

from tests.conftest import database_url
from tests.inventory.helpers import FEED, follow, sync
from tests.support.factories import key_headers, make_account, make_products, set_plan


@pytest.fixture
async def key(client: AsyncClient) -> str:
    """A Pro key whose per-minute limit a test's polling never reaches. The feed serves a change
    only once every older transaction of the PostgreSQL cluster has ended, so while another run
    on the shared server holds one open, `follow` polls (up to 10 s, 20 a second): past Pro's
    120 a minute that answered 429 and failed the test. The limit itself is the gate tests'."""
    _, api_key = await make_account(client, plan="pro")
    await set_plan(client, "pro", requests_per_minute=100_000)
    return api_key


async def test_free_plan_gets_403_with_the_upgrade_link(client: AsyncClient) -> None:
    _, free_key = await make_account(client)
    response = await client.get(FEED, headers=key_headers(free_key))
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "feature_not_in_plan"
    assert body["upgrade_url"].startswith("https://api.agentmall.test/")
    assert (await client.get(FEED)).status_code == 401


async def test_pro_plan_is_served_and_metered(client: AsyncClient, key: str) -> None:
    response = await client.get(FEED, headers=key_headers(key))
    assert response.status_code == 200
    assert response.json()["data"] == [] and response.json()["has_more"] is False
    assert "x-ratelimit-limit" in response.headers and "x-quota-remaining" in response.headers
    await client.get(FEED, params={"cursor": "forged"}, headers=key_headers(key))  # 400: free
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["by_endpoint"] == {"inventory.changes": 1}


async def test_pages_walk_every_change_once_then_wait_at_the_end(
    client: AsyncClient, key: str
) -> None:
    skus = await make_products(client, 45)
    await follow(client, key, at_least=45)  # visible once older transactions have ended
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(FEED, params=params, headers=key_headers(key))).json()
        seen += [c["sku"] for c in page["data"]]
        sizes.append(len(page["data"]))
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == skus and sizes == [20, 20, 5]
    ids = [c["id"] for c in (await follow(client, key))[0]]
    assert len(set(ids)) == 45
    # At the end the cursor stays put: nothing new, nothing repeated...
    empty = (await client.get(FEED, params={"cursor": cursor}, headers=key_headers(key))).json()
    assert empty["data"] == [] and empty["next_cursor"] == cursor
    # ...and picks up exactly what commits next.
    await sync(client, [{"sku": skus[3], "stock": 0}])
    new, _ = await follow(client, key, cursor, at_least=1)
    assert [(c["sku"], c["stock"], c["kind"]) for c in new] == [(skus[3], 0, "inventory")]


async def test_bad_cursors_and_limits(client: AsyncClient, key: str) -> None:
    await make_products(client, 3)
    await follow(client, key, at_least=3)
    page = (await client.get(FEED, params={"limit": 1}, headers=key_headers(key))).json()
    cursor = page["next_cursor"]
    body, mac = cursor.split(".")
    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({"t": raw["t"], "i": 0}).encode()).decode()
    catalog = await client.get("/v1/products", params={"limit": 1}, headers=key_headers(key))
    for bad in (
        "garbage",
        f"{edited.rstrip('=')}.{mac}",  # edited position, old MAC
        cursor[:-1],  # truncated MAC
        catalog.json()["next_cursor"],  # another list's cursor
        "x" * 300,
    ):
        response = await client.get(FEED, params={"cursor": bad}, headers=key_headers(key))
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_cursor"
    for limit in (0, 101):
        response = await client.get(FEED, params={"limit": limit}, headers=key_headers(key))
        assert response.status_code == 422
    assert (await client.get(FEED, headers=key_headers(key))).json()["data"][0][
        "sku"
    ] == "SKU-00000"


async def test_a_change_committed_late_is_served_late_not_skipped(
    client: AsyncClient, key: str
) -> None:
    """A writer draws its change id, then commits after a later writer: the feed must hold back
    the later change until the earlier transaction ends (id order alone would skip it)."""
    held_sku, other = await make_products(client, 2)
    _, cursor = await follow(client, key, at_least=2)
    held = await asyncpg.connect(database_url())
    transaction = held.transaction()
    await transaction.start()
    await held.execute("UPDATE inventory SET quantity = 42 WHERE sku = $1", held_sku)
    held_id = await held.fetchval(
        "INSERT INTO inventory_changes (sku, kind, stock, price_cents, currency, changed_at)"
        " VALUES ($1, 'inventory', 42, 1999, 'usd', now()) RETURNING id",
        held_sku,
    )
    await sync(client, [{"sku": other, "stock": 7}])  # commits a later id first
    probe = await asyncpg.connect(database_url())
    later_id = await probe.fetchval("SELECT max(id) FROM inventory_changes")
    assert later_id > held_id  # out-of-order visibility, provoked
    served, cursor_during = await follow(client, key, cursor)
    assert served == []  # held back, not skipped past
    await transaction.commit()
    await held.close()
    await probe.close()
    served, _ = await follow(client, key, cursor_during, at_least=2)
    assert [(c["id"], c["sku"], c["stock"]) for c in served] == [
        (held_id, held_sku, 42),
        (later_id, other, 7),
    ]
