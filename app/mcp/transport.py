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
"""

from __future__ import annotations

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Message, Receive, Scope, Send

from app.core.config import Settings
from app.gate.headers import with_headers
from app.mcp.hosts import allowed_hosts, allowed_origins
from app.mcp.metering import HEADERS
from app.mcp.tools import build_server


class McpTransport:
    """The MCP server of one app and the transport settings its requests are served with."""

    def __init__(self, settings: Settings) -> None:
        self.server = build_server()
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=allowed_hosts(settings),
            allowed_origins=allowed_origins(settings),
        )
        # The public way to the low-level server a manager serves: build one app, keep its server.
        self.server.streamable_http_app(
            json_response=True, stateless_http=True, transport_security=self.security
        )
        self.lowlevel = self.server.session_manager.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request with a fresh stateless manager; the gate's rate-limit headers
        (left in the scope state by the tool call) go on the response."""
        manager = StreamableHTTPSessionManager(
            app=self.lowlevel,
            json_response=True,
            stateless=True,
            security_settings=self.security,
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = with_headers(message, scope.get("state", {}).get(HEADERS))
            await send(message)

        async with manager.run():
            await manager.handle_request(scope, receive, send_with_headers)
