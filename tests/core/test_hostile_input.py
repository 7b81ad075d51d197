"""Inputs PostgreSQL cannot store (NUL characters) are 422s naming the field, never 500s."""

from __future__ import annotations

import json

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


async def test_json_that_would_break_reads_is_refused_on_write(client: AsyncClient) -> None:
    def nested(depth: int) -> object:
        value: object = []
        for _ in range(depth):
            value = [value]
        return value

    for attributes in [
        {"k": "\ud800"},  # a lone surrogate: storable, but unservable as UTF-8
        {"k": nested(6)},  # deeper than attributes may go
        {"k": nested(479)},  # deep enough to exhaust recursion in naive validators
    ]:
        body = json.dumps(
            {"products": [product("DEEP-1", attributes=attributes)]}
        )  # \ud800 escaped
        headers = ADMIN | {"Content-Type": "application/json"}
        response = await client.put("/v1/admin/products", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"].startswith("products.0.attributes")
    ok = {"products": [product("DEEP-1", attributes={"k": nested(4), "s": "naïve ✓"})]}
    assert (await client.put("/v1/admin/products", json=ok, headers=ADMIN)).status_code == 200


async def test_unreadable_bodies_are_a_clear_400(client: AsyncClient) -> None:
    import gzip

    _, key = await make_account(client, plan="pro")
    headers = key_headers(key) | {"Content-Type": "application/json"}
    bodies = [
        (gzip.compress(b'{"skus": ["A-1"]}'), {"Content-Encoding": "gzip"}),
        (b'{"skus": ["\xff"]}', {}),
        (b"[" * 10_000 + b"]" * 10_000, {}),
    ]
    for content, extra in bodies:
        response = await client.post("/v1/products/bulk", content=content, headers=headers | extra)
        assert response.status_code in {400, 422}, response.text
        assert response.json()["error"] in {"invalid_body", "invalid_json", "validation_error"}


async def test_validation_errors_name_each_field_once(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    body = {"skus": [f"S-{i}" for i in range(101)]}
    response = await client.post("/v1/products/bulk", json=body, headers=key_headers(key))
    assert response.status_code == 422
    assert len(response.json()["fields"]) == 1


async def test_plan_fields_cannot_be_nulled_and_races_are_not_500(client: AsyncClient) -> None:
    import asyncio

    for field in ("name", "included_calls", "requests_per_minute", "features"):
        body = {"name": "X", "included_calls": 1, "requests_per_minute": 1, field: None}
        response = await client.put("/v1/admin/plans/nully", json=body, headers=ADMIN)
        assert response.status_code == 422, field
    body = {"name": "Race", "included_calls": 1, "requests_per_minute": 1}
    responses = await asyncio.gather(
        *(client.put("/v1/admin/plans/race", json=body, headers=ADMIN) for _ in range(8))
    )
    assert {r.status_code for r in responses} <= {200, 409}
    assert any(r.status_code == 200 for r in responses)
    cleared = await client.put(
        "/v1/admin/plans/race", json={"monthly_price_cents": None}, headers=ADMIN
    )
    assert cleared.status_code == 200 and cleared.json()["monthly_price_cents"] is None
