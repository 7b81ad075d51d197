"""`POST /mcp` through the AWS Lambda entrypoint: Mangum runs the lifespan around every
invocation, and a warm container keeps answering and metering tool calls (each request enters
its own stateless session manager, so nothing the lifespan did or undid matters)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from httpx import AsyncClient

from app.core.config import Settings
from tests.test_lambda import deployed_env, http_api_event, invoke, seed

API_GATEWAY = "https://abc123xyz.execute-api.eu-west-1.amazonaws.com"  # the events' Host
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "lambda-test", "version": "1.0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def mcp_event(
    request_id: int, method: str, params: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    event = http_api_event(
        "POST", "/mcp", headers={"accept": "application/json, text/event-stream", **headers}
    )
    event["body"] = json.dumps(body)
    event["headers"]["content-type"] = "application/json"
    return event


def result_of(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200, response
    assert "mcp-session-id" not in response["headers"]
    answer = json.loads(response["body"])
    assert "error" not in answer, answer
    return dict(answer["result"])


async def test_a_warm_lambda_container_serves_and_meters_tool_calls(
    client: AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    sku = "LAMBDA-MCP-1"
    key = await seed(client, sku)
    lookup = {"name": "lookup_catalog", "arguments": {"skus": [sku]}}
    modern = {"mcp-protocol-version": MODERN, "x-api-key": key}
    events = [
        mcp_event(1, "tools/list", {}, {}),  # legacy era, no key: free
        mcp_event(2, "tools/call", lookup, {"x-api-key": key}),  # legacy era
        mcp_event(
            3,
            "tools/call",
            {**lookup, "_meta": META},
            {**modern, "mcp-method": "tools/call", "mcp-name": "lookup_catalog"},
        ),
    ]
    env = {**deployed_env(settings), "PUBLIC_BASE_URL": API_GATEWAY}

    listed, first, second = await asyncio.to_thread(invoke, events, env, tmp_path)

    assert {t["name"] for t in result_of(listed)["tools"]} >= {"search_catalog", "get_usage"}
    for response in (first, second):
        product = result_of(response)["structuredContent"]["data"][0]
        assert product["sku"] == sku and product["price_cents"] == 4200
        assert "x-ratelimit-degraded" not in response["headers"]
    assert first["headers"]["x-quota-remaining"] == "999"
    assert second["headers"]["x-quota-remaining"] == "998"
