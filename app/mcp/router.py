"""`POST /mcp` (the MCP endpoint) and `GET /llms.txt` (what AgentMall is, for models).

`POST /mcp` hands the raw ASGI call to the MCP transport, built on the app's first MCP request
(the SDK is imported then, not at start-up). Only POST is routed: `GET` and `DELETE /mcp` are the
router's 405 with the app's error body (a stateless server has no event stream to open and no
session to end). Authentication happens per tool call, inside the protocol (see
`app.mcp.metering`); listing the tools needs no key and costs nothing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from app.core.errors import NotFound

if TYPE_CHECKING:
    from app.mcp.transport import McpTransport

LLMS_TXT = Path(__file__).resolve().parents[2] / "public" / "llms.txt"  # Vercel serves it too

router = APIRouter(tags=["mcp"])
discovery = APIRouter(tags=["discovery"])


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


@router.post(
    "/mcp",
    response_class=Response,
    summary="MCP endpoint (Streamable HTTP, stateless, JSON responses)",
    responses={
        200: {"description": "A JSON-RPC response (refusals are JSON-RPC errors, code -32003)"},
        202: {"description": "A notification, accepted"},
        421: {"description": "The Host header is not one of this deployment's host names"},
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
