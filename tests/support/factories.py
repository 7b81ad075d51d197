"""Small `make_*` helpers that drive the API the way a user would."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from typing import Any

from httpx import AsyncClient

from tests.conftest import ADMIN_KEY

ADMIN = {"X-API-Key": ADMIN_KEY}


def random_client_ip() -> str:
    """A random address in 100.64.0.0/10 (shared address space), never a trusted test proxy."""
    return str(ipaddress.IPv4Address((100 << 24 | 64 << 16) + secrets.randbelow(1 << 22)))


async def make_account(client: AsyncClient, *, plan: str | None = None) -> tuple[str, str]:
    """Sign up a fresh account (optionally moved to `plan`); returns (account id, API key).

    Each sign-up comes from its own address, as forwarded by the test peer, which the test
    settings trust as a proxy (`TRUSTED_PROXIES`), so tests never hit the per-address limit."""
    email = f"dev-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/v1/signup", json={"email": email}, headers={"X-Forwarded-For": random_client_ip()}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    if plan:
        await set_account_plan(client, body["account_id"], plan)
    return body["account_id"], body["api_key"]


async def set_account_plan(client: AsyncClient, account_id: str, plan: str) -> None:
    response = await client.put(
        f"/v1/admin/accounts/{account_id}/plan", json={"plan": plan}, headers=ADMIN
    )
    assert response.status_code == 200, response.text


async def set_plan(client: AsyncClient, code: str, **changes: Any) -> dict[str, Any]:
    response = await client.put(f"/v1/admin/plans/{code}", json=changes, headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


def product(sku: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sku": sku,
        "name": f"Product {sku}",
        "description": "A sturdy thing.",
        "category": "gadgets",
        "price_cents": 1999,
        "currency": "usd",
        "attributes": {"color": "black"},
        "stock": 5,
    }
    data.update(overrides)
    return data


async def make_products(client: AsyncClient, count: int, *, prefix: str = "SKU") -> list[str]:
    skus = [f"{prefix}-{i:05d}" for i in range(count)]
    for start in range(0, count, 1000):
        batch = [product(s) for s in skus[start : start + 1000]]
        response = await client.put("/v1/admin/products", json={"products": batch}, headers=ADMIN)
        assert response.status_code == 200, response.text
    return skus


def key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
