"""Liveness and readiness (never metered)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import ServicesDep
from app.redis.port import RedisUnavailable

router = APIRouter(prefix="/v1/health", tags=["public"])


@router.get("")
async def health() -> dict[str, str]:
    """The process answers; touches neither the database nor Redis."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """200 when Postgres and Redis both answer; 503 naming the one that does not."""
    failing = []
    try:
        async with services.db.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:
        failing.append("database")
    try:
        await services.redis.ping()
    except RedisUnavailable:
        failing.append("redis")
    if failing:
        body = {
            "error": "not_ready",
            "message": f"Not ready: {' and '.join(failing)} unreachable.",
            "unavailable": failing,
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "redis": services.redis.backend})
