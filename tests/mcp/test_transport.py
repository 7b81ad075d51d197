"""`POST /mcp` over real HTTP: both protocol eras, stateless across instances, host checks, 405s,
and the tools as clients see them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.main import create_app
from tests.mcp.conftest import LEGACY, MODERN, RoundRobin, Served, mcp_client, serve
from tests.support.factories import key_headers, make_account, make_products

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"search_catalog", "lookup_catalog", "list_categories", "get_usage"}
# A legacy (handshake-era) client's request, sent by hand: no initialize needed when stateless.
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


async def usage(client: AsyncClient, key: str) -> dict[str, object]:
    response = await client.get("/v1/usage", headers=key_headers(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_listing_tools_is_free_and_needs_no_key(
    served: Served, client: AsyncClient, mode: str
) -> None:
    _, key = await make_account(client)
    async with mcp_client(served.url, mode=mode) as anonymous:
        assert {t.name for t in (await anonymous.list_tools()).tools} == TOOLS
    async with mcp_client(served.url, key=key, mode=mode) as mcp:
        expected = "2026-07-28" if mode == MODERN else "2025-11-25"
        assert mcp.protocol_version == expected
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        await mcp.list_tools()
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.output_schema is not None and tool.description
    assert "price_cents" in str(tools["lookup_catalog"].output_schema)
    assert set(tools["search_catalog"].input_schema["properties"]) == {
        "query",
        "filters",
        "sort",
        "pagination",
        "facets",
    }
    assert (await usage(client, key))["used"] == 0
    assert served.requests["POST /mcp"] >= 4 and served.session_ids == []  # stateless


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_two_instances_alternated_on_every_request(
    served_pair: list[Served], client: AsyncClient, mode: str
) -> None:
    """No affinity: each HTTP request goes to the other instance, in both protocol eras."""
    skus = await make_products(client, 3)
    _, key = await make_account(client)
    transport = RoundRobin([s.port for s in served_pair])
    async with mcp_client(served_pair[0].url, key=key, mode=mode, transport=transport) as mcp:
        assert len((await mcp.list_tools()).tools) == 4
        for sku in skus:
            result = await mcp.call_tool("lookup_catalog", {"skus": [sku]})
            assert not result.is_error and result.structured_content is not None
            assert result.structured_content["data"][0]["sku"] == sku
        found = await mcp.call_tool("search_catalog", {"query": "product", "facets": True})
        assert found.structured_content is not None
        assert found.structured_content["pagination"]["total_count"] == 3
    first, second = (s.requests["POST /mcp"] for s in served_pair)
    assert first >= 3 and second >= 3 and abs(first - second) <= 1
    assert served_pair[0].session_ids == served_pair[1].session_ids == []
    body = await usage(client, key)
    assert body["used"] == 4
    assert body["by_endpoint"] == {"mcp:lookup_catalog": 3, "mcp:search_catalog": 1}


async def test_get_and_delete_are_405_with_the_error_body(served: Served) -> None:
    async with AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:
        for method in ("GET", "DELETE"):
            response = await http.request(method, "/mcp", headers=MCP_HEADERS)
            assert response.status_code == 405, response.text
            assert response.json()["error"] == "method_not_allowed"
            assert response.json()["message"]
            assert "POST" in response.headers["allow"]


async def test_a_foreign_host_is_refused_and_the_deployment_hosts_pass(
    app: FastAPI, client: AsyncClient
) -> None:
    settings = app.state.services.settings.model_copy(
        update={
            "VERCEL_URL": "agentmall-abc123-team.vercel.app",
            "VERCEL_PROJECT_PRODUCTION_URL": "agentmall.vercel.app",
            "VERCEL_BRANCH_URL": "agentmall-git-main-team.vercel.app",
        }
    )
    vercel_app = create_app(settings)
    try:
        async with serve(vercel_app) as served:
            async with AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:

                async def post(host: str, **headers: str) -> int:
                    all_headers = {**MCP_HEADERS, "Host": host, **headers}
                    response = await http.post("/mcp", json=LIST_TOOLS, headers=all_headers)
                    return response.status_code

                assert await post("evil.example") == 421  # DNS rebinding protection
                assert await post("agentmall.vercel.app.evil.example") == 421
                for host in (
                    "agentmall-abc123-team.vercel.app",
                    "agentmall.vercel.app",
                    "agentmall-git-main-team.vercel.app",
                    "agentmall.vercel.app:443",
                    "api.agentmall.test",  # PUBLIC_BASE_URL
                    f"127.0.0.1:{served.port}",
                    f"localhost:{served.port}",
                ):
                    assert await post(host) == 200, host
                origin = "https://agentmall.vercel.app"
                assert await post("agentmall.vercel.app", Origin=origin) == 200
                assert await post("agentmall.vercel.app", Origin="https://evil.example") == 403
    finally:
        await vercel_app.state.services.close()


async def test_served_without_a_lifespan_too(app: FastAPI) -> None:
    """A host that never runs the lifespan (here httpx's ASGI transport) is served all the same:
    each request enters its own stateless session manager."""
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        response = await http.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)
    assert response.status_code == 200, response.text
    assert {t["name"] for t in response.json()["result"]["tools"]} == TOOLS
    assert "mcp-session-id" not in response.headers


async def test_llms_txt_is_served_from_public(client: AsyncClient) -> None:
    response = await client.get("/llms.txt")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.text == (ROOT / "public" / "llms.txt").read_text()
    for name in TOOLS | {"/mcp", "X-API-Key", "/v1/products/search"}:
        assert name in response.text
