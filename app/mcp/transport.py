"""Streamable HTTP for `POST /mcp`: stateless, JSON responses, this deployment's hosts only.

**A session manager per request.** The SDK serves HTTP through a `StreamableHTTPSessionManager`
whose `run()` must be entered before a request and can be entered only once per manager. In
stateless mode a manager keeps nothing between requests (no session, no event store), so each
request gets a fresh one, entered around it. That is what "stateless" means here: any instance
answers any request, with nothing to start in a lifespan — which matters because (a) the SDK
import costs about a second, paid on the first MCP request rather than by every cold start, and
(b) hosts run the lifespan differently (once under uvicorn and Vercel, around every invocation
under Mangum, not at all under a test transport). The cost is one task group per request
(`bench/mcp.py` measures the whole call against its REST twin).

Both protocol eras are served: a 2026-07-28 request (sessionless, `MCP-Protocol-Version` header)
is answered directly; an older client's `initialize` handshake and later requests are answered
statelessly (no `Mcp-Session-Id`). Server-to-client requests and the `GET` event stream are not
offered (`GET /mcp` is a 405 in the router: on serverless an idle stream would hold a function).

**Refusals at the HTTP level carry the API's error body** (SPEC §5, `{"error", "message"}`): a
`Content-Type` other than JSON is a 415 answered here, before the SDK reads anything; the SDK's
own header refusals (421 for a foreign `Host`, 403 for a foreign `Origin`, 406 for an `Accept`
without JSON) come out of it as plain text or an empty body and are rewritten on the way out.
Errors about the JSON-RPC message itself (400 parse error or invalid request, and in the
2026-07-28 era the HTTP status of a JSON-RPC error: 400 invalid params, 404 method not found)
stay JSON-RPC error objects, which is what an MCP client reads.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from app.core.config import Settings
from app.gate.headers import with_headers
from app.mcp.hosts import allowed_hosts, allowed_origins
from app.mcp.metering import HEADERS
from app.mcp.protocol import tools_only
from app.mcp.tools import build_server

# The SPEC's error body for what the transport refuses before any JSON-RPC is read.
HTTP_ERRORS = {
    403: ("origin_not_allowed", "Requests from the site in the Origin header are not accepted."),
    406: (
        "not_acceptable",
        "MCP requests must accept JSON responses: send Accept: application/json, "
        "text/event-stream.",
    ),
    415: (
        "unsupported_media_type",
        "Send the JSON-RPC message as JSON, with Content-Type: application/json.",
    ),
    421: (
        "misdirected_request",
        "This server does not answer for the host name in the Host header: call it by its own "
        "host name.",
    ),
}


class McpTransport:
    """The MCP server of one app and the transport settings its requests are served with."""

    def __init__(self, settings: Settings) -> None:
        self.server = build_server()
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=allowed_hosts(settings),
            allowed_origins=allowed_origins(settings),
        )
        # The public way to the MCPServer's low-level server: build one app, keep its server.
        self.server.streamable_http_app(
            json_response=True, stateless_http=True, transport_security=self.security
        )
        # What is served: that server's tools and nothing else (see app.mcp.protocol).
        self.lowlevel = tools_only(self.server, self.server.session_manager.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request with a fresh stateless manager; the gate's rate-limit headers
        (left in the scope state by the tool call) go on the response."""
        if not _is_json(Headers(scope=scope).get("content-type")):
            await send_error(send, 415)
            return
        manager = StreamableHTTPSessionManager(
            app=self.lowlevel,
            json_response=True,
            stateless=True,
            security_settings=self.security,
        )
        refusal: Message | None = None  # an HTTP-level refusal of the SDK's, held to rewrite

        async def send_with_headers(message: Message) -> None:
            nonlocal refusal
            if message["type"] == "http.response.start":
                status = message["status"]
                if status in HTTP_ERRORS or (status >= 400 and not _is_json_message(message)):
                    refusal = message
                    return
                message = with_headers(message, scope.get("state", {}).get(HEADERS))
            elif refusal is not None:  # the refusal's body: replaced by the error body
                if not message.get("more_body", False):
                    await send_error(send, refusal["status"], _kept_headers(refusal))
                return
            await send(message)

        async with manager.run():
            await manager.handle_request(scope, receive, send_with_headers)


async def send_error(
    send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """The SPEC's error body (`{"error", "message"}`) with this status."""
    code, message = HTTP_ERRORS.get(status, ("http_error", f"{_phrase(status)}."))
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *(headers or []),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _is_json(content_type: str | None) -> bool:
    """The SDK's own test of a POST's Content-Type (anything else it refuses)."""
    return content_type is not None and content_type.lower().startswith("application/json")


def _is_json_message(start: Message) -> bool:
    return _is_json(Headers(raw=start.get("headers", [])).get("content-type"))


def _kept_headers(start: Message) -> list[tuple[bytes, bytes]]:
    dropped = {b"content-type", b"content-length"}
    return [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
