"""HTTP helpers shared by the search tests."""

from __future__ import annotations

import json
from typing import Any

from httpx import AsyncClient, Response

from tests.support.factories import ADMIN, key_headers

SEARCH = "/v1/products/search"
Body = dict[str, Any]


async def upsert(client: AsyncClient, items: list[Body]) -> None:
    """Admin upsert, in batches of the endpoint's maximum (1,000)."""
    for start in range(0, len(items), 1000):
        response = await client.put(
            "/v1/admin/products", json={"products": items[start : start + 1000]}, headers=ADMIN
        )
        assert response.status_code == 200, response.text


async def post(client: AsyncClient, key: str, body: Any) -> Response:
    """POST a search; the body is encoded here so a lone surrogate travels as its JSON escape."""
    headers = key_headers(key) | {"Content-Type": "application/json"}
    return await client.post(SEARCH, content=json.dumps(body), headers=headers)


async def search(client: AsyncClient, key: str, body: Body) -> Body:
    response = await post(client, key, body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def skus_of(products: list[Body]) -> list[str]:
    return [p["sku"] for p in products]
