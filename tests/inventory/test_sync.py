"""`POST /v1/admin/inventory/sync`: effective changes only, unknown SKUs reported, bounds, the
Stripe-style Idempotency-Key, and product upserts logged as changes too."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from app.models import utcnow
from tests.conftest import database_url
from tests.inventory.helpers import SYNC, change_count, follow, sync
from tests.support.factories import ADMIN, key_headers, make_account, make_products, product


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The webhook events queued (in the request's transaction), in order."""
    queued: list[tuple[str, dict[str, Any]]] = []

    async def enqueue(session: Any, *, event_type: str, data: dict[str, Any], **_: Any) -> int:
        assert session.in_transaction()
        queued.append((event_type, data))
        return 0

    monkeypatch.setattr("app.inventory.service.enqueue", enqueue)
    monkeypatch.setattr("app.catalog.service.enqueue", enqueue)
    return queued


async def test_sync_applies_effective_changes_and_reports_the_rest(
    client: AsyncClient, events: list[tuple[str, dict[str, Any]]]
) -> None:
    a, b, c = await make_products(client, 3)  # stock 5, 1999 cents
    _, key = await make_account(client, plan="pro")
    _, start = await follow(client, key, at_least=3)
    events.clear()
    result = await sync(
        client,
        [
            {"sku": a, "stock": 7},
            {"sku": b, "stock": 5},  # as it is
            {"sku": c, "stock": 5, "price_cents": 2500},  # price only
            {"sku": "NOPE-1", "stock": 1},
            {"sku": "SKU-00099", "stock": 0, "price_cents": 1999},
        ],
    )
    assert result == {"updated": [a, c], "unchanged": [b], "not_found": ["NOPE-1", "SKU-00099"]}
    got = (await client.get(f"/v1/products/{c}", headers=key_headers(key))).json()
    assert (got["stock"], got["price_cents"]) == (5, 2500)
    got = (await client.get(f"/v1/products/{a}", headers=key_headers(key))).json()
    assert (got["stock"], got["price_cents"]) == (7, 1999)
    changes, _ = await follow(client, key, start, at_least=2)
    assert [(x["sku"], x["kind"], x["stock"], x["price_cents"]) for x in changes] == [
        (a, "inventory", 7, 1999),
        (c, "inventory", 5, 2500),
    ]
    assert [e[0] for e in events] == ["inventory.updated"]  # one event per sync call
    assert [x["sku"] for x in events[0][1]["changes"]] == [a, c]
    # A sync that changes nothing logs nothing and queues no event.
    assert (await sync(client, [{"sku": a, "stock": 7}]))["unchanged"] == [a]
    assert await change_count() == 5 and len(events) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        ({"items": [{"sku": f"S-{i}", "stock": 1} for i in range(1001)]}, "items"),
        ({"items": [{"sku": "A", "stock": 1}, {"sku": "A", "stock": 2}]}, "items"),
        ({"items": [{"sku": "A", "stock": -1}]}, "items.0.stock"),
        ({"items": [{"sku": "A", "stock": 1, "price_cents": -5}]}, "items.0.price_cents"),
        ({"items": [{"sku": "bad sku", "stock": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "A", "stock": 1, "colour": "red"}]}, "items.0.colour"),
    ],
)
async def test_sync_bounds_are_422s_naming_the_field(
    client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post(SYNC, json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert field in {f["field"] for f in response.json()["fields"]}


async def test_sync_body_over_one_mib_is_413(client: AsyncClient) -> None:
    body = b'{"items":[' + b" " * (1024 * 1024) + b"]}"
    response = await client.post(
        SYNC, content=body, headers=ADMIN | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_sync_is_for_the_founder_only(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    items = {"items": [{"sku": "A", "stock": 1}]}
    assert (await client.post(SYNC, json=items)).status_code == 401
    response = await client.post(SYNC, json=items, headers=key_headers(key))
    assert response.status_code == 403


async def test_same_key_same_body_replays_without_applying(client: AsyncClient) -> None:
    (a,) = await make_products(client, 1)
    before = await change_count()
    first = await client.post(
        SYNC, json={"items": [{"sku": a, "stock": 9}]}, headers=ADMIN | {"Idempotency-Key": "k-1"}
    )
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    await sync(client, [{"sku": a, "stock": 3}])  # someone else moves the stock on
    # The retry is formatted differently but is the same request: the first answer comes back.
    again = await client.post(
        SYNC,
        content=b'{ "items": [ {"stock": 9, "sku": "%s"} ] }' % a.encode(),
        headers=ADMIN | {"Idempotency-Key": "k-1", "Content-Type": "application/json"},
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() == {"updated": [a], "unchanged": [], "not_found": []}
    assert await change_count() == before + 2  # the replay logged nothing and applied nothing
    _, key = await make_account(client, plan="pro")
    assert (await client.get(f"/v1/products/{a}", headers=key_headers(key))).json()["stock"] == 3


async def test_same_key_other_body_is_409(client: AsyncClient) -> None:
    (a,) = await make_products(client, 1)
    await sync(client, [{"sku": a, "stock": 9}], key="k-2")
    response = await client.post(
        SYNC, json={"items": [{"sku": a, "stock": 8}]}, headers=ADMIN | {"Idempotency-Key": "k-2"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_reused"


async def test_idempotency_key_header_is_bounded(client: AsyncClient) -> None:
    for bad in ("x" * 256, "has space"):
        response = await client.post(
            SYNC,
            json={"items": [{"sku": "A", "stock": 1}]},
            headers=ADMIN | {"Idempotency-Key": bad},
        )
        assert response.status_code == 422


async def test_concurrent_requests_with_one_key_apply_once(client: AsyncClient) -> None:
    skus = await make_products(client, 20)
    before = await change_count()
    body = {"items": [{"sku": s, "stock": 100 + i} for i, s in enumerate(skus)]}
    other = {"items": [{"sku": s, "stock": 1} for s in skus]}
    headers = ADMIN | {"Idempotency-Key": "k-concurrent"}
    responses = await asyncio.gather(
        *[client.post(SYNC, json=body, headers=headers) for _ in range(6)],
        client.post(SYNC, json=other, headers=headers),
    )
    same, different = responses[:6], responses[6]
    assert all(r.status_code in (200, 409) for r in responses)
    fresh = [
        r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers
    ]
    assert len(fresh) == 1  # exactly one request applied its body; the rest replayed or got 409
    if fresh[0] is different:
        assert all(r.status_code == 409 for r in same)
    else:
        assert all(r.status_code == 200 for r in same) and different.status_code == 409
        assert {r.json()["error"] for r in [different]} == {"idempotency_key_reused"}
    assert await change_count() == before + len(skus)


async def test_keys_are_kept_a_day_and_pruned_after_two(client: AsyncClient) -> None:
    (a,) = await make_products(client, 1)
    conn = await asyncpg.connect(database_url())
    now = utcnow()
    for key, age in (("old", 49), ("recent", 25)):
        await conn.execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response,"
            " created_at) VALUES ('inventory.sync', $1, 'h', 200, '{}', $2)",
            key,
            now - timedelta(hours=age),
        )
    await sync(client, [{"sku": a, "stock": 1}])
    kept = {r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
    await conn.close()
    assert kept == {"recent"}


async def test_product_upserts_are_changes_too(
    client: AsyncClient, events: list[tuple[str, dict[str, Any]]]
) -> None:
    _, key = await make_account(client, plan="pro")

    async def upsert(*items: dict[str, Any]) -> None:
        response = await client.put(
            "/v1/admin/products", json={"products": list(items)}, headers=ADMIN
        )
        assert response.status_code == 200, response.text

    await upsert(product("P-1"), product("P-2", stock=None))
    created, cursor = await follow(client, key, at_least=2)
    assert [(c["sku"], c["kind"], c["stock"], c["price_cents"]) for c in created] == [
        ("P-1", "product", 5, 1999),
        ("P-2", "product", 0, 1999),
    ]
    await upsert(product("P-1"), product("P-2", stock=None))  # nothing differs
    assert (await follow(client, key, cursor))[0] == []
    await upsert(
        product("P-1", attributes={"color": "red"}),
        product("P-2", price_cents=1500, stock=None),
    )
    changed, cursor = await follow(client, key, cursor, at_least=2)
    assert [(c["sku"], c["stock"], c["price_cents"]) for c in changed] == [
        ("P-1", 5, 1999),
        ("P-2", 0, 1500),
    ]
    await upsert(product("P-1", attributes={"color": "red"}, stock=2))  # stock via upsert
    assert [(c["sku"], c["stock"]) for c in (await follow(client, key, cursor, at_least=1))[0]] == [
        ("P-1", 2)
    ]
    assert [e[0] for e in events] == ["product.updated"] * 3  # one per upsert with changes
    assert [c["sku"] for c in events[1][1]["changes"]] == ["P-1", "P-2"]
