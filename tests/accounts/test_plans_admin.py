"""PUT /v1/admin/plans/{code} accepts what GET /v1/plans returns (round trip)."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.support.factories import ADMIN


async def public_plan(client: AsyncClient, code: str) -> dict[str, Any]:
    """The plan `code` exactly as GET /v1/plans shows it."""
    plans = (await client.get("/v1/plans")).json()["data"]
    return dict(next(p for p in plans if p["code"] == code))


async def test_a_plan_from_get_plans_can_be_put_back_unchanged(client: AsyncClient) -> None:
    free = await public_plan(client, "free")
    response = await client.put("/v1/admin/plans/free", json=free, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == free
    assert await public_plan(client, "free") == free


async def test_the_round_trip_carries_changes(client: AsyncClient) -> None:
    free = await public_plan(client, "free") | {"requests_per_minute": 7, "name": "Free (v2)"}
    response = await client.put("/v1/admin/plans/free", json=free, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert await public_plan(client, "free") == free


async def test_a_code_other_than_the_path_is_422_naming_code(client: AsyncClient) -> None:
    free = await public_plan(client, "free")
    renamed = free | {"code": "pro", "name": "Hijacked"}
    response = await client.put("/v1/admin/plans/free", json=renamed, headers=ADMIN)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert [f["field"] for f in body["fields"]] == ["code"]
    assert await public_plan(client, "free") == free  # nothing was written
    response = await client.put("/v1/admin/plans/free", json=free | {"code": 1}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "code"


async def test_a_new_plan_can_be_created_from_a_copy(client: AsyncClient) -> None:
    copy = await public_plan(client, "free") | {"code": "free-copy", "name": "Free copy"}
    response = await client.put("/v1/admin/plans/free-copy", json=copy, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == copy
