"""The gate as a FastAPI dependency, and the middleware that finishes each metered request.

The dependency admits (and counts) the request before the handler runs. The middleware sees the
final status: it stamps the rate-limit headers on the response, gives the quota back when the
handler did not succeed (only 2xx count), and, when the request was served while Redis was away
(fail-open), counts it straight into Postgres so no billed call is lost.
"""

import logging
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.deps import ApiKeyHeader, ServicesDep, SessionDep
from app.gate.headers import rate_limit_headers
from app.gate.service import GateDecision

logger = logging.getLogger("agentmall.gate")

GateDep = Callable[..., Coroutine[Any, Any, GateDecision]]


def gate(feature: str, endpoint: str, cost: Callable[..., int] | None = None) -> GateDep:
    """A dependency that admits a request to `endpoint` (needs `feature`) or raises the gate error.

    `cost`, when given, is itself a dependency (e.g. one that reads the validated body), so a body
    that fails validation is answered 422 before anything is counted.
    """

    async def check(
        request: Request,
        services: ServicesDep,
        session: SessionDep,
        units: Annotated[int, Depends(cost or _one)],
        x_api_key: ApiKeyHeader = None,
    ) -> GateDecision:
        decision = await services.gate.check(
            session, raw_key=x_api_key, feature=feature, endpoint=endpoint, cost=units
        )
        request.state.gate = decision
        return decision

    return check


def _one() -> int:
    return 1


def cost_per(units: int, count: int) -> int:
    """1 unit per `units` items, rounded up (bulk lookups)."""
    return max(1, math.ceil(count / units))


class MeteringMiddleware:
    """Finishes metered requests: headers, refunds of failed calls, degraded-mode metering."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = False

        async def finish(message: Message) -> None:
            nonlocal started
            decision: GateDecision | None = state.get("gate")
            if message["type"] == "http.response.start" and decision is not None:
                started = True
                status = int(message["status"])
                await _settle(scope, decision, ok=200 <= status < 300)
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in rate_limit_headers(decision).items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, finish)
        except BaseException:
            # An unhandled error becomes a 500 further out, past this middleware: settle here.
            decision = state.get("gate")
            if decision is not None and not started:
                await _settle(scope, decision, ok=False)
            raise


async def _settle(scope: Scope, decision: GateDecision, *, ok: bool) -> None:
    services = scope["app"].state.services
    if decision.degraded:
        if ok:
            from app.usage import service as usage_service

            await usage_service.record_degraded(services, decision)
        return
    if not ok:
        await services.gate.refund(decision)
        decision.used -= decision.cost
