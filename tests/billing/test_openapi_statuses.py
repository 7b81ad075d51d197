"""The statuses the key, admin and billing routes really answer are in the OpenAPI document (a
client generated from it has a type for each of these bodies)."""

from __future__ import annotations

from typing import Any

import respx
from httpx import AsyncClient, Response

from app.core.apikeys import generate_key
from tests.billing.conftest import STRIPE_BASE
from tests.support.factories import key_headers, make_account


def _declared(spec: dict[str, Any], method: str, path: str) -> set[str]:
    return set(spec["paths"][path][method]["responses"])


async def _until_refused(client: AsyncClient, method: str, path: str) -> Response:
    """Present random well-formed keys from one address until the guess allowance runs out."""
    for _ in range(200):
        response = await client.request(method, path, headers={"X-API-Key": generate_key()})
        if response.status_code != 401:
            return response
    raise AssertionError("never refused")


async def test_key_guessing_429_is_declared_on_key_and_admin_routes(client: AsyncClient) -> None:
    refused = await _until_refused(client, "POST", "/v1/keys/key_x/rotate")
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_invalid_keys"
    for path in ("/v1/admin/billing/incidents", "/v1/admin/accounts/acct_x/suspend"):
        method = "GET" if path.endswith("incidents") else "POST"
        again = await client.request(method, path, headers={"X-API-Key": generate_key()})
        assert again.status_code == 429, path
    spec = (await client.get("/openapi.json")).json()
    missing = {
        f"{method.upper()} {path}"
        for method, path in [
            ("post", "/v1/keys/{key_id}/rotate"),
            ("delete", "/v1/keys/{key_id}"),
            ("post", "/v1/keys"),
            ("get", "/v1/keys"),
            ("post", "/v1/admin/accounts/{account_id}/suspend"),
            ("post", "/v1/admin/accounts/{account_id}/unsuspend"),
            ("get", "/v1/admin/billing/incidents"),
        ]
        if "429" not in _declared(spec, method, path)
    }
    assert not missing, f"429 answered but not declared on {sorted(missing)}"


async def test_stripe_unavailable_502_is_declared_on_billing_routes(
    client: AsyncClient, bootstrapped: None, stripe_api: respx.MockRouter
) -> None:
    stripe_api.post(f"{STRIPE_BASE}/v1/customers").mock(
        return_value=Response(500, json={"error": {"type": "api_error", "message": "down"}})
    )
    _, key = await make_account(client)
    response = await client.post(
        "/v1/billing/checkout", json={"plan": "pro"}, headers=key_headers(key)
    )
    assert response.status_code == 502 and response.json()["error"] == "stripe_unavailable"
    spec = (await client.get("/openapi.json")).json()
    for method, path in [
        ("post", "/v1/billing/checkout"),
        ("post", "/v1/billing/portal"),
        ("get", "/v1/billing/upgrade"),
        ("get", "/v1/billing/manage"),
    ]:
        assert "502" in _declared(spec, method, path), f"{method.upper()} {path}"
