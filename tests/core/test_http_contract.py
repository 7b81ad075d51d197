"""Every error, including the router's own, has the SPEC's body."""

from __future__ import annotations

from httpx import AsyncClient


async def test_router_errors_have_the_spec_body(client: AsyncClient) -> None:
    response = await client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No route matches this path."}
    response = await client.delete("/v1/products")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


async def test_health_is_cheap_and_ready_checks_both(client: AsyncClient) -> None:
    assert (await client.get("/v1/health")).json() == {"status": "ok"}
    ready = await client.get("/v1/health/ready")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert "x-ratelimit-limit" not in ready.headers
