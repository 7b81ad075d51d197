"""The middleware that finishes each metered request.

The gate dependency (`app.deps.gate`) admits (and counts) the request before the handler runs.
This middleware sees the final status: it stamps the rate-limit headers on the response, gives the
quota back when the handler did not succeed (only 2xx count), and, when the request was served
while Redis was away (fail-open), keeps it in Postgres by request id so no billed call is lost.
The first request after such an outage that reaches Redis again starts settling those calls in
the background (the roll-up cron settles whatever is left).
"""

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.gate.decision import GateDecision
from app.gate.headers import rate_limit_headers, with_headers
from app.usage import service as usage_service

logger = logging.getLogger("agentmall.gate")
_background: set[asyncio.Task[Any]] = set()  # strong references until the tasks finish


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
                await settle(scope, decision, ok=200 <= status < 300)
                message = with_headers(message, rate_limit_headers(decision))
            await send(message)

        try:
            await self.app(scope, receive, finish)
        except BaseException:
            # An unhandled error becomes a 500 further out, past this middleware: settle here.
            decision = state.get("gate")
            if decision is not None and not started:
                await settle(scope, decision, ok=False)
            raise


async def settle(scope: Scope, decision: GateDecision, *, ok: bool) -> None:
    """Settle a metered call once answered (REST here, MCP tool calls in app.mcp.metering):
    refunded unless it succeeded; served while Redis was away, recorded for the roll-up."""
    services = scope["app"].state.services  # the app's wiring (app/services.py)
    if decision.degraded:
        # The gate script may have run after all (only its answer was lost): a success is kept
        # (+cost) unless Redis counted it, a failure is a void (-cost) that takes back what Redis
        # counted, if it did, so a failed call is never billed (usage.service.settle_degraded).
        await services.gate.record_unsettled(decision, decision.cost if ok else -decision.cost)
        return
    if services.gate.unsettled:  # Redis answers again: settle what was served without it
        services.gate.unsettled = False
        task = asyncio.ensure_future(_settle_degraded(services))
        _background.add(task)
        task.add_done_callback(_background.discard)
    if not ok:
        await services.gate.refund(decision)
        decision.used -= decision.cost


async def _settle_degraded(services: Any) -> None:
    try:
        await usage_service.settle_degraded(services.db, services.redis, services.keys)
    except Exception:  # the cron settles whatever this could not
        logger.warning("settling degraded-mode calls failed; the roll-up cron will retry")
