"""`POST /mcp` (the MCP endpoint) and `GET /llms.txt` (what AgentMall is, for models).

`POST /mcp` hands the raw ASGI call to the MCP transport, built on the app's first MCP request
(the SDK is imported then, not at start-up). Only POST is routed: `GET` and `DELETE /mcp` are the
router's 405 with the app's error body (a stateless server has no event stream to open and no
session to end). Authentication happens per tool call, inside the protocol (see
`app.mcp.metering`); listing the tools needs no key and costs nothing. The OpenAPI entry names
every status it answers: JSON-RPC errors for the message (400, and 404 on the 2026-07-28
protocol), the app's error body for refused headers and sizes (403, 406, 413, 415, 421).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from app.core.errors import ErrorBody, NotFound, error_responses
from app.core.routing import Router
from app.core.schemas import Schema

if TYPE_CHECKING:
    from app.mcp.transport import McpTransport

LLMS_TXT = Path(__file__).resolve().parents[2] / "public" / "llms.txt"  # Vercel serves it too

router = Router(tags=["mcp"])
discovery = Router(tags=["discovery"])


class McpCall(Response):
    """A response that is the MCP transport answering the request itself."""

    def __init__(self, transport: McpTransport) -> None:
        super().__init__()
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.transport(scope, receive, send)


def transport_of(app: FastAPI) -> McpTransport:
    """The app's MCP transport, built (and the SDK imported) on first use."""
    transport: McpTransport | None = getattr(app.state, "mcp", None)
    if transport is None:
        from app.mcp.transport import McpTransport

        transport = McpTransport(app.state.services.settings)
        app.state.mcp = transport
    return transport


class JsonRpcErrorObject(Schema):
    code: int
    message: str
    data: Any = None


class JsonRpcError(Schema):
    """A JSON-RPC 2.0 error response: how MCP answers a message it cannot serve."""

    jsonrpc: Literal["2.0"]
    id: int | str | None
    error: JsonRpcErrorObject


# Refused before any JSON-RPC is read: the API's error body (app.mcp.transport). 413 is the app's
# body-size guard, as on every route.
_REFUSALS: dict[int | str, dict[str, Any]] = {
    **error_responses(413),
    **{
        status: {"model": ErrorBody, "description": description}
        for status, description in {
            403: "The Origin header names a site this server does not accept (browsers)",
            406: "The Accept header does not accept JSON (send application/json, "
            "text/event-stream)",
            415: "The Content-Type is not application/json",
            421: "The Host header is not one of this deployment's host names",
        }.items()
    },
}


@router.post(
    "/mcp",
    response_class=Response,
    summary="MCP endpoint (Streamable HTTP, stateless, JSON responses)",
    responses={
        200: {
            "description": "A JSON-RPC response: the result, or an error (a refused tool call "
            "is code -32003, an unknown tool -32602, a method this server does not serve -32601)"
        },
        202: {"description": "A notification, accepted"},
        400: {
            "model": JsonRpcError,
            "description": "A JSON-RPC error about the message: not JSON (-32700) or not a "
            "JSON-RPC request (-32600); on the 2026-07-28 protocol also invalid params (-32602, "
            "such as an unknown tool) and headers that contradict the body",
        },
        404: {
            "model": JsonRpcError,
            "description": "On the 2026-07-28 protocol, a method this server does not serve "
            "(-32601), such as prompts/get",
        },
        **_REFUSALS,
    },
)
async def mcp_endpoint(request: Request) -> Response:
    """The catalog as MCP tools: search_catalog, lookup_catalog, list_categories, get_usage.

    Send the API key as `X-API-Key` (or `Authorization: Bearer`). Each tool call is gated and
    metered like its REST twin; listing the tools is free.
    """
    return McpCall(transport_of(request.app))


@cache
def _llms_txt() -> str:
    return LLMS_TXT.read_text(encoding="utf-8")  # a failed read is not cached: it raises


@discovery.get("/llms.txt", response_class=PlainTextResponse, include_in_schema=False)
async def llms_txt() -> PlainTextResponse:
    """`public/llms.txt`: what AgentMall is, how to authenticate, the tools and endpoints."""
    try:
        text = _llms_txt()
    except OSError as exc:
        raise NotFound("llms.txt is not bundled with this deployment.") from exc
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
