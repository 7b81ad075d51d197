"""MCP by the book: only the capabilities this server has, the spec's error codes, argument errors a
model can act on, and HTTP-level refusals in the API's error body (issue 20).

Scenarios of the official conformance suite run against the real server in
`scripts/mcp_conformance.sh`; these pin the same behaviour in the test suite, in both protocol
eras (2026-07-28 sessionless, and the 2025-11-25 `initialize` handshake served statelessly).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND

from app.mcp.protocol import SERVED
from app.mcp.router import transport_of
from tests.mcp.conftest import LEGACY, MODERN, Served, mcp_client
from tests.support.factories import key_headers, make_account

TOOLS = ["search_catalog", "lookup_catalog", "list_categories", "get_usage"]
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
MODERN_HEADERS = {**MCP_HEADERS, "MCP-Protocol-Version": "2026-07-28"}


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def text_of(result: Any) -> str:
    (content,) = result.content
    return str(content.text)


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_only_the_tools_capability_is_advertised(served: Served, mode: str) -> None:
    async with mcp_client(served.url, mode=mode) as mcp:
        capabilities = mcp.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.prompts is None and capabilities.resources is None
        assert capabilities.logging is None and capabilities.completions is None
        for call in (mcp.list_prompts(), mcp.list_resources()):
            with pytest.raises(MCPError) as caught:
                await call
            assert caught.value.code == METHOD_NOT_FOUND


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_an_unknown_tool_is_invalid_params_naming_the_tools(
    served: Served, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    async with mcp_client(served.url, mode=mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("search_products", {"query": "socks"})
    error = caught.value
    assert error.code == INVALID_PARAMS  # -32602, as MCP says for an unknown tool
    assert "search_products" in error.message
    assert all(tool in error.message for tool in TOOLS)
    assert error.data == {"tool": "search_products", "tools": TOOLS}
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_an_unknown_prompt_is_method_not_found(
    served: Served, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """Not -32602 ("invalid prompt name"): that is for a server with prompts. Prompts are not
    advertised here, so `prompts/get` itself is the method not found (-32601), whatever the name,
    and not code 0 with a traceback."""
    async with mcp_client(served.url, mode=mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.get_prompt("test_simple_prompt")
    assert caught.value.code == METHOD_NOT_FOUND
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_invalid_arguments_are_one_sentence_naming_the_field(
    served: Served, client: AsyncClient, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    _, key = await make_account(client)
    async with mcp_client(served.url, key=key, mode=mode) as mcp:
        empty = await mcp.call_tool("lookup_catalog", {"skus": []})
        missing = await mcp.call_tool("lookup_catalog", {})
        too_many = await mcp.call_tool("search_catalog", {"pagination": {"limit": 500}})
        union = await mcp.call_tool(
            "search_catalog",
            {"filters": {"attributes": [{"name": "ram_gb", "op": "gte", "value": [16]}]}},
        )
    texts = [text_of(r) for r in (empty, missing, too_many, union)]
    assert all(r.is_error for r in (empty, missing, too_many, union))  # the model can correct
    assert texts[0] == (
        "Invalid arguments for lookup_catalog: skus: list should have at least 1 item after "
        "validation, not 0."
    )
    assert texts[1] == "Invalid arguments for lookup_catalog: skus is required."
    assert texts[2] == (
        "Invalid arguments for search_catalog: pagination.limit: input should be less than or "
        "equal to 100."
    )
    assert texts[3] == (
        "Invalid arguments for search_catalog: filters.attributes[0].value: input should be a "
        "valid string, a valid boolean, a valid integer or a valid number."
    )
    for text in texts:
        assert "\n" not in text and text.endswith(".") and text.count(": ") <= 2
        assert "http" not in text and "pydantic" not in text and "[type=" not in text
    assert (await client.get("/v1/usage", headers=key_headers(key))).json()["used"] == 0
    assert errors_logged(caplog) == []


@pytest.fixture
async def http(app: FastAPI) -> AsyncClient:
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    return AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


def assert_error_body(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code
    assert body["message"].endswith(".") and "\n" not in body["message"]


@pytest.mark.parametrize("headers", [MCP_HEADERS, MODERN_HEADERS], ids=["legacy", "modern"])
async def test_http_refusals_carry_the_api_error_body(
    http: AsyncClient, headers: dict[str, str]
) -> None:
    async with http:
        foreign = await http.post("/mcp", json=LIST_TOOLS, headers={**headers, "Host": "evil.test"})
        assert_error_body(foreign, 421, "misdirected_request")
        origin = await http.post(
            "/mcp", json=LIST_TOOLS, headers={**headers, "Origin": "https://evil.test"}
        )
        assert_error_body(origin, 403, "origin_not_allowed")
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
            wrong = await http.post("/mcp", content=b'{"jsonrpc": "2.0"}', headers=sent)
            assert_error_body(wrong, 415, "unsupported_media_type")
        html = await http.post("/mcp", json=LIST_TOOLS, headers={**headers, "Accept": "text/html"})
        assert_error_body(html, 406, "not_acceptable")
        # About the JSON-RPC message itself: a JSON-RPC error, as MCP clients read it.
        garbled = await http.post(
            "/mcp", content=b'{"jsonrpc":', headers={**headers, "Content-Type": "application/json"}
        )
        assert garbled.status_code == 400
        assert garbled.json()["jsonrpc"] == "2.0" and garbled.json()["error"]["code"] == -32700


async def test_the_openapi_document_names_what_post_mcp_answers(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    responses = spec["paths"]["/mcp"]["post"]["responses"]

    def schema(status: str) -> str:
        return str(responses[status]["content"]["application/json"]["schema"]["$ref"])

    for status in ("400", "404"):
        assert schema(status).endswith("/JsonRpcError"), status
    for status in ("403", "406", "413", "415", "421"):
        assert schema(status).endswith("/ErrorBody"), status
    assert {"200", "202"} <= set(responses)


def test_the_served_methods_are_the_tools_ones(app: FastAPI) -> None:
    lowlevel = transport_of(app).lowlevel
    assert all(lowlevel.get_request_handler(method) for method in SERVED)
    for method in (
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "subscriptions/listen",
        "logging/setLevel",
        "completion/complete",
    ):
        assert lowlevel.get_request_handler(method) is None, method
