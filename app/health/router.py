"""Liveness and readiness (never metered).

Readiness is public, so it is priced like the other public endpoints: limited per client address
(`PublicLimiter.ready`, 429 `rate_limit_exceeded` with `Retry-After`), and its database probe is a
unit of work (`Database.unit`), so however many probes arrive, an instance never holds more than
`DB_MAX_CONNECTIONS` connections; past the cap a probe waits its turn like any request. The
limiter's own round trip is the Redis probe: one Redis command per probe, not two.
"""

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse

from app.core.errors import error_responses
from app.core.routing import Router
from app.deps import ServicesDep
from app.redis.port import RedisUnavailable

router = Router(prefix="/v1/health", tags=["public"])


@router.get("")
async def health() -> dict[str, str]:
    """The process answers; touches neither the database nor Redis."""
    return {"status": "ok"}


@router.get("/ready", responses=error_responses(429, 503))
async def ready(request: Request, services: ServicesDep) -> JSONResponse:
    """200 when Postgres and Redis both answer; 503 naming the one that does not."""
    limiter = services.public_limiter
    redis_ok = database_ok = True
    try:
        # Counting the probe is the Redis check. When Redis is out it cannot count, whatever
        # RATE_LIMIT_FAILURE_MODE says: the probe goes on and names Redis (the database probe
        # below stays bounded by the connection cap).
        await limiter.count(limiter.ready, request)
    except RedisUnavailable:
        redis_ok = False
    try:
        async with services.db.unit(read_only=True) as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception:
        database_ok = False
    failing = [name for name, ok in (("database", database_ok), ("redis", redis_ok)) if not ok]
    if failing:
        body = {
            "error": "not_ready",
            "message": f"Not ready: {' and '.join(failing)} unreachable.",
            "unavailable": failing,
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "redis": services.redis.backend})
