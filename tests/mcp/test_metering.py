"""Tool calls are data-plane requests: the same keys, plans, quota, window and usage as REST."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from mcp.shared.exceptions import MCPError

from app.mcp.errors import REFUSED
from tests.mcp.conftest import LEGACY, MODERN, Served, mcp_client
from tests.support.factories import (
    ADMIN,
    key_headers,
    make_account,
    make_products,
    product,
    set_plan,
)


async def usage(client: AsyncClient, key: str) -> dict[str, Any]:
    response = await client.get("/v1/usage", headers=key_headers(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def refused(mcp: Any, tool: str, arguments: dict[str, Any]) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await mcp.call_tool(tool, arguments)
    assert caught.value.code == REFUSED
    return caught.value


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_rest_and_tool_calls_share_one_quota(
    served: Served, client: AsyncClient, mode: str
) -> None:
    skus = await make_products(client, 3)
    _, key = await make_account(client)
    rest = [
        await client.post(
            "/v1/products/search", json={"query": "product"}, headers={"X-API-Key": key}
        ),
        await client.get(f"/v1/products/{skus[0]}", headers=key_headers(key)),
    ]
    assert [r.status_code for r in rest] == [200, 200]
    async with mcp_client(served.url, key=key, mode=mode) as mcp:
        await mcp.list_tools()
        calls = [
            await mcp.call_tool("search_catalog", {"query": "product", "pagination": {"limit": 2}}),
            await mcp.call_tool("lookup_catalog", {"skus": [skus[1]]}),
            await mcp.call_tool("list_categories", {}),
        ]
        assert not any(c.is_error for c in calls)
        assert served.last_headers["x-quota-remaining"] == str(1000 - 5)  # as REST stamps them
        page = calls[0].structured_content
        assert page is not None and len(page["products"]) == 2
        assert page["pagination"]["has_next_page"] and page["pagination"]["total_count"] == 3
        cursor = page["pagination"]["cursor"]
        more = await mcp.call_tool(
            "search_catalog", {"query": "product", "pagination": {"cursor": cursor}}
        )
        assert more.structured_content is not None
        assert len(more.structured_content["products"]) == 1
        product = calls[1].structured_content
        assert product is not None
        assert product["data"][0]["price_cents"] == 1999 and product["data"][0]["currency"] == "usd"
        mine = await mcp.call_tool("get_usage", {})  # free, like GET /v1/usage
    body = await usage(client, key)
    assert body["used"] == 2 + 4
    assert body["by_endpoint"] == {
        "products.search": 1,
        "products.get": 1,
        "mcp:search_catalog": 2,
        "mcp:lookup_catalog": 1,
        "mcp:list_categories": 1,
    }
    assert mine.structured_content is not None and mine.structured_content["used"] == 6
    assert mine.structured_content["by_endpoint"] == body["by_endpoint"]


async def test_bulk_lookup_costs_as_rest_and_needs_a_paid_plan(
    served: Served, client: AsyncClient
) -> None:
    skus = await make_products(client, 25)
    _, free_key = await make_account(client)
    async with mcp_client(served.url, key=free_key) as mcp:
        error = await refused(mcp, "lookup_catalog", {"skus": skus[:2]})
    assert error.data["error"] == "feature_not_in_plan" and error.data["status"] == 403
    assert "one SKU per call works on every plan" in error.message
    assert error.data["upgrade_url"] in error.message
    assert (await usage(client, free_key))["used"] == 0

    _, key = await make_account(client, plan="pro")
    async with mcp_client(served.url, key=key) as mcp:
        result = await mcp.call_tool("lookup_catalog", {"skus": [*skus, "MISSING-1"]})
    assert result.structured_content is not None
    assert len(result.structured_content["data"]) == 25
    assert result.structured_content["not_found"] == ["MISSING-1"]
    assert served.last_headers["x-quota-remaining"] == str(50_000 - 3)  # 26 SKUs -> 3 units
    assert (await usage(client, key))["by_endpoint"] == {"mcp:lookup_catalog": 3}


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_a_free_key_past_its_quota_is_told_how_to_upgrade_and_when_it_resets(
    served: Served, client: AsyncClient, mode: str
) -> None:
    await make_products(client, 1)
    await set_plan(client, "free", included_calls=3)
    _, key = await make_account(client)
    for _ in range(2):
        assert (await client.get("/v1/categories", headers=key_headers(key))).status_code == 200
    async with mcp_client(served.url, key=key, mode=mode) as mcp:
        assert not (await mcp.call_tool("search_catalog", {"query": "product"})).is_error
        error = await refused(mcp, "search_catalog", {"query": "product"})
        assert len((await mcp.list_tools()).tools) == 4  # listing still works
        mine = await mcp.call_tool("get_usage", {})  # and so does the caller's own usage
    assert error.data["error"] == "quota_exceeded" and error.data["status"] == 429
    assert error.data["upgrade_url"].startswith("https://api.agentmall.test/v1/billing/upgrade?")
    assert error.data["upgrade_url"] in error.message
    assert f"resets at {error.data['reset_at']}" in error.message
    assert served.last_headers["x-quota-remaining"] == "0"
    assert mine.structured_content is not None and mine.structured_content["remaining"] == 0
    assert (await usage(client, key))["used"] == 3  # the refused call counted nothing


async def test_the_per_minute_window_says_how_long_to_wait(
    served: Served, client: AsyncClient
) -> None:
    await set_plan(client, "free", requests_per_minute=2)
    _, key = await make_account(client)
    async with mcp_client(served.url, key=key) as mcp:
        for _ in range(2):
            assert not (await mcp.call_tool("list_categories", {})).is_error
        error = await refused(mcp, "list_categories", {})
    assert error.data["error"] == "rate_limit_exceeded"
    assert 1 <= error.data["retry_after"] <= 61
    assert f"Retry in {error.data['retry_after']} second" in error.message
    assert served.last_headers["retry-after"] == str(error.data["retry_after"])


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_a_revoked_key_fails_on_its_next_tool_call_on_every_instance(
    served_pair: list[Served], client: AsyncClient, mode: str
) -> None:
    """Revoked through instance A (REST), refused by instance B, whose cache holds the key warm."""
    _, key = await make_account(client)
    created = (await client.post("/v1/keys", headers=key_headers(key))).json()
    other = served_pair[1]
    async with mcp_client(other.url, key=created["api_key"], mode=mode) as mcp:
        assert not (await mcp.call_tool("list_categories", {})).is_error
        revoked = await client.delete(f"/v1/keys/{created['id']}", headers=key_headers(key))
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        error = await refused(mcp, "list_categories", {})
        assert error.data["error"] == "invalid_api_key"
        assert "unknown or has been revoked" in error.message and "X-API-Key" in error.message
        usage_error = await refused(mcp, "get_usage", {})
        assert usage_error.data["error"] == "invalid_api_key"
    async with mcp_client(other.url, key=key, mode=mode) as mcp:
        assert not (await mcp.call_tool("list_categories", {})).is_error


async def test_missing_and_malformed_keys_are_explained(
    served: Served, client: AsyncClient
) -> None:
    async with mcp_client(served.url) as mcp:
        error = await refused(mcp, "list_categories", {})
        assert error.data["error"] == "missing_api_key" and error.data["status"] == 401
        assert "X-API-Key" in error.message and "/v1/signup" in error.message
        assert (await refused(mcp, "get_usage", {})).data["error"] == "missing_api_key"
    async with mcp_client(served.url, key="am_live_not-a-real-key") as mcp:
        assert (await refused(mcp, "list_categories", {})).data["error"] == "invalid_api_key"


async def test_a_bearer_token_works_as_the_key(served: Served, client: AsyncClient) -> None:
    _, key = await make_account(client)
    async with mcp_client(served.url, headers={"Authorization": f"Bearer {key}"}) as mcp:
        assert not (await mcp.call_tool("list_categories", {})).is_error
        mine = await mcp.call_tool("get_usage", {})
    assert mine.structured_content is not None
    assert mine.structured_content["by_endpoint"] == {"mcp:list_categories": 1}


async def test_failed_calls_are_tool_errors_and_are_refunded(
    served: Served, client: AsyncClient
) -> None:
    skus = await make_products(client, 1)
    _, key = await make_account(client)
    async with mcp_client(served.url, key=key) as mcp:
        missing = await mcp.call_tool("lookup_catalog", {"skus": ["NOPE-1"]})
        bad_cursor = await mcp.call_tool(
            "search_catalog", {"query": "product", "pagination": {"cursor": "tampered"}}
        )
        bad_arguments = await mcp.call_tool("lookup_catalog", {"skus": []})
        ok = await mcp.call_tool("lookup_catalog", {"skus": skus})
    assert missing.is_error and "product_not_found" in str(missing.content)
    assert "search_catalog finds SKUs" in str(missing.content)
    assert bad_cursor.is_error and "invalid_cursor" in str(bad_cursor.content)
    assert bad_arguments.is_error
    assert not ok.is_error
    body = await usage(client, key)
    assert body["used"] == 1  # refunded counters stay at 0, as REST's do
    assert {k: v for k, v in body["by_endpoint"].items() if v} == {"mcp:lookup_catalog": 1}


async def test_lookup_catalog_reads_warm_products_without_sql_and_sees_changes(
    served: Served, client: AsyncClient, app: FastAPI
) -> None:
    """MCP's product reads share REST's hot path (app/catalog/reads.py): warm, no SQL; a
    change is answered on the next call."""
    skus = await make_products(client, 3)
    _, key = await make_account(client, plan="pro")
    db = app.state.services.db
    async with mcp_client(served.url, key=key) as mcp:
        for args in ({"skus": [skus[0]]}, {"skus": skus}):
            first = await mcp.call_tool("lookup_catalog", args)
            before = db.queries.count
            again = await mcp.call_tool("lookup_catalog", args)
            assert db.queries.count == before  # no statement at all, key lookup included
            assert again.structured_content == first.structured_content
        changed = {"products": [product(skus[0], price_cents=4321)]}
        assert (await client.put("/v1/admin/products", json=changed, headers=ADMIN)).is_success
        for args in ({"skus": [skus[0]]}, {"skus": skus}):
            seen = await mcp.call_tool("lookup_catalog", args)
            assert seen.structured_content is not None
            assert seen.structured_content["data"][0]["price_cents"] == 4321
