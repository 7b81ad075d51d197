"""Inputs PostgreSQL cannot store (NUL characters) are 422s naming the field, never 500s."""

from __future__ import annotations

from httpx import AsyncClient

from tests.support.factories import ADMIN, key_headers, make_account, product


async def test_nul_characters_anywhere_are_422(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    user = key_headers(key)
    cases = [
        client.get("/v1/products", params={"q": "a\x00b"}, headers=user),
        client.post("/v1/keys", json={"name": "a\x00b"}, headers=user),
        client.post("/v1/products/bulk", json={"skus": ["A\x00"]}, headers=user),
        client.post("/v1/signup", json={"email": "a\x00b@example.com"}),
        client.delete("/v1/keys/key_%00", headers=user),
        client.delete("/v1/keys/" + "k" * 41, headers=user),
        client.post("/v1/admin/keys/%00/suspend", headers=ADMIN),
        client.put("/v1/admin/accounts/a%00/plan", json={"plan": "pro"}, headers=ADMIN),
        client.put("/v1/admin/plans/free", json={"name": "a\x00"}, headers=ADMIN),
        client.put(
            "/v1/admin/products", json={"products": [product("N-1", name="a\x00")]}, headers=ADMIN
        ),
        client.put(
            "/v1/admin/products",
            json={"products": [product("N-2", attributes={"k": ["ok", "a\x00"]})]},
            headers=ADMIN,
        ),
    ]
    for call in cases:
        response = await call
        assert response.status_code == 422, response.text
        assert response.json()["error"] in {"validation_error", "invalid_email"}
    assert (await client.get("/v1/usage", headers=user)).json()["used"] == 0
