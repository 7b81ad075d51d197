"""One tool call = one data-plane request, admitted and settled exactly as its REST twin.

`metered(...)` opens the request's unit of work, runs `Gate.check` with the tool's feature, cost
and endpoint name (`mcp:<tool>`), lets the tool run, and then settles the call with the REST
middleware's own settlement: refunded unless it succeeded, kept in PostgreSQL when it was served
while Redis was away. `control_plane(...)` is `GET /v1/usage`'s path: the key read fresh, never
gated or counted.

The HTTP request carrying the call (the SDK hands it to tools as `ctx.request_context.request`)
supplies the key, the client address and the app's services; the rate-limit headers of the
decision are left in the request's scope state for the transport to put on the HTTP response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.core.errors import AppError
from app.deps import Principal, get_principal, presented_key
from app.gate.decision import GateDecision
from app.gate.headers import rate_limit_headers

# The settlement the REST middleware applies to every metered response (refund unless 2xx,
# degraded-mode bookkeeping): reused, not copied, so both protocols count the same way.
from app.gate.middleware import settle
from app.mcp.errors import failure, refusal
from app.services import Services

HEADERS = "agentmall.mcp.rate_limit_headers"  # scope-state key read by the transport


@dataclass(frozen=True, slots=True)
class Call:
    """What a tool body gets: the app's services and the call's unit of work."""

    services: Services
    session: AsyncSession
    decision: GateDecision | None = None  # the gate's (with the product versions it read)


def http_request(ctx: Context[Any]) -> Request:
    """The HTTP request that carried this tool call."""
    request = ctx.request_context.request
    if not isinstance(request, Request):  # stdio or in-process: no key, no services
        raise ToolError("AgentMall's tools are served over HTTP only (POST /mcp).")
    return request


@asynccontextmanager
async def metered(
    ctx: Context[Any],
    *,
    feature: str,
    endpoint: str,
    cost: int = 1,
    read_only: bool = False,
    products: Sequence[str] = (),
) -> AsyncIterator[Call]:
    """Admit (and count) the call or refuse it; settle it once the body is done."""
    request = http_request(ctx)
    services: Services = request.app.state.services
    decision: GateDecision | None = None
    ok = False
    try:
        async with services.db.unit(read_only=read_only) as session:
            decision = await services.gate.check(
                session,
                raw_key=presented_key(request),
                feature=feature,
                endpoint=endpoint,
                cost=cost,
                client_ip=services.client_ip.of(request),
                products=products,
            )
            yield Call(services, session, decision)
        ok = True
    except AppError as exc:
        if decision is None:  # the gate refused: nothing was counted
            _keep_headers(request, exc.headers)
            raise refusal(exc, services.settings, feature=feature) from None
        raise failure(exc) from None
    finally:
        if decision is not None:
            await settle(request.scope, decision, ok=ok)
            _keep_headers(request, rate_limit_headers(decision))


@asynccontextmanager
async def control_plane(ctx: Context[Any]) -> AsyncIterator[tuple[Call, Principal]]:
    """The caller read fresh from PostgreSQL, as `GET /v1/usage` does: never gated or counted."""
    request = http_request(ctx)
    services: Services = request.app.state.services
    try:
        async with services.db.unit() as session:
            principal = await get_principal(request, services, session)
            yield Call(services, session), principal
    except AppError as exc:
        raise refusal(exc, services.settings) from None


def _keep_headers(request: Request, headers: Mapping[str, str]) -> None:
    if headers:
        request.scope.setdefault("state", {})[HEADERS] = dict(headers)
