"""Catalog endpoints: search, pagination, bounds and every bad input answered with a clear 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from tests.support.factories import ADMIN, key_headers, make_account, make_products, product


@pytest.fixture
async def key(client: AsyncClient) -> str:
    _, api_key = await make_account(client, plan="pro")
    return api_key


async def test_cursor_pagination_walks_every_product_once(client: AsyncClient, key: str) -> None:
    skus = await make_products(client, 45)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/products", params=params, headers=key_headers(key))).json()
        seen += [p["sku"] for p in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == skus


async def test_search_and_category(client: AsyncClient, key: str) -> None:
    items = [
        product("CAF-1", name="Café Crème Espresso", category="coffee"),
        product("CAF-2", name="Decaf beans", category="coffee", description="100% arabica"),
        product("LAP-1", name="Laptop Pro 14", category="laptops"),
    ]
    response = await client.put("/v1/admin/products", json={"products": items}, headers=ADMIN)
    assert response.status_code == 200

    async def skus(**params: str) -> list[str]:
        found = await client.get("/v1/products", params=params, headers=key_headers(key))
        assert found.status_code == 200
        return [p["sku"] for p in found.json()["data"]]

    assert await skus(q="café") == ["CAF-1"]
    assert await skus(q="CAFÉ") == ["CAF-1"]
    assert await skus(q="100%") == ["CAF-2"]  # % is literal, not a wildcard
    assert await skus(q="_") == []
    assert await skus(category="coffee") == ["CAF-1", "CAF-2"]
    assert await skus(q="🦄") == []


async def test_bad_cursors_are_400(client: AsyncClient, key: str) -> None:
    await make_products(client, 3)
    page = (await client.get("/v1/products?limit=1", headers=key_headers(key))).json()
    cursor = page["next_cursor"]
    body, mac = cursor.split(".")
    tampered = [
        "garbage",
        "a.b",
        body + "." + ("0" * len(mac)),
        body[:-2] + "." + mac,
        "%%%.%%%",
        "😀.😀",
    ]
    for bad in tampered:
        response = await client.get(
            "/v1/products", params={"cursor": bad}, headers=key_headers(key)
        )
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_cursor"
    # a cursor replayed with other filters belongs to another query
    response = await client.get(
        "/v1/products", params={"cursor": cursor, "q": "x"}, headers=key_headers(key)
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"q": "x" * 201},
        {"category": "x" * 101},
        {"brand": "b" * 101},
        {"price_min": -1},
        {"price_min": 500, "price_max": 100},
        {"attr": "ram_gb>=lots"},
        {"attr": "no operator"},
        {"attr": "bad name!=3"},
        {"sort": "cheapest"},
        {"in_stock": "maybe"},
    ],
)
async def test_bounds_are_errors_not_clamps(
    client: AsyncClient, key: str, params: dict[str, object]
) -> None:
    response = await client.get("/v1/products", params=params, headers=key_headers(key))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["fields"][0]["field"] == next(iter(params))


async def test_product_detail_and_404(client: AsyncClient, key: str) -> None:
    (sku,) = await make_products(client, 1)
    response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
    assert response.json()["price_cents"] == 1999 and response.json()["currency"] == "usd"
    response = await client.get("/v1/products/NOPE", headers=key_headers(key))
    assert response.status_code == 404
    assert response.json() == {
        "error": "product_not_found",
        "message": "No product with this SKU.",
        "sku": "NOPE",
    }
    response = await client.get("/v1/products/" + "x" * 65, headers=key_headers(key))
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"skus": [f"S-{i}" for i in range(10_000)]}, 413, "payload_too_large"),
        ({"skus": [f"S-{i}" for i in range(101)]}, 422, "validation_error"),
        ({"skus": []}, 422, "validation_error"),
        ({"skus": "S-1"}, 422, "validation_error"),
        ({"skus": [1, 2]}, 422, "validation_error"),
        ({"skus": ["ünïcode"]}, 422, "validation_error"),
        ({"skus": ["A"], "extra": 1}, 422, "validation_error"),
        ({}, 422, "validation_error"),
        ([], 422, "validation_error"),
    ],
)
async def test_bad_bulk_bodies(
    client: AsyncClient, key: str, body: object, status: int, error: str
) -> None:
    response = await client.post("/v1/products/bulk", json=body, headers=key_headers(key))
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 0  # a rejected body is never billed


async def test_malformed_and_oversized_bodies(client: AsyncClient, key: str) -> None:
    headers = key_headers(key) | {"Content-Type": "application/json"}
    response = await client.post("/v1/products/bulk", content=b"{not json", headers=headers)
    assert response.status_code == 422 and response.json()["error"] == "invalid_json"
    response = await client.post("/v1/products/bulk", content=b"", headers=headers)
    assert response.status_code == 422
    big = b'{"skus": ["' + b"A" * 70_000 + b'"]}'
    response = await client.post("/v1/products/bulk", content=big, headers=headers)
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: enforced while streaming
        for _ in range(100):
            yield b"A" * 1024

    response = await client.post("/v1/products/bulk", content=chunks(), headers=headers)
    assert response.status_code == 413


async def test_admin_upsert_is_idempotent_and_validated(client: AsyncClient) -> None:
    items = [product("P-1"), product("P-2", stock=0)]
    first = await client.put("/v1/admin/products", json={"products": items}, headers=ADMIN)
    assert first.json() == {"created": 2, "updated": 0}
    items[0]["price_cents"] = 2500
    again = await client.put("/v1/admin/products", json={"products": items}, headers=ADMIN)
    assert again.json() == {"created": 0, "updated": 2}
    bad = [product("P-3", price_cents=-1), product("P 4"), product("P-5", currency="USD")]
    for item in bad:
        response = await client.put("/v1/admin/products", json={"products": [item]}, headers=ADMIN)
        assert response.status_code == 422, item
    too_many = [product(f"Q-{i}", attributes={}) for i in range(1001)]
    response = await client.put("/v1/admin/products", json={"products": too_many}, headers=ADMIN)
    assert response.status_code == 422
    _, key = await make_account(client)
    user = key_headers(key)
    response = await client.put("/v1/admin/products", json={"products": items}, headers=user)
    assert response.status_code == 403 and response.json()["error"] == "admin_required"
    response = await client.put("/v1/admin/products", json={"products": items})
    assert response.status_code == 401
