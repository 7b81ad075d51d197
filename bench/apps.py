"""What the gate benchmark runs against: the database, settings, and the comparison routes.

No `from __future__ import annotations` here: FastAPI resolves the annotations of the routes and
dependencies defined inside functions below, and string annotations would hide their locals.

* `ungated_router`: `GET /bench/products/{sku}`, the catalog handler with no gate at all.
* `two_limiters_router`: the same handler behind two `upstash-ratelimit` limiters (per-minute
  sliding window, then 30-day fixed window), called in sequence as a developer would.
* `slowapi_app`: a separate small app, same handler logic and database, with slowapi limits on a
  Redis backend on one route and none on the other.
"""

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from alembic import command
from alembic.config import Config
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from sqlalchemy.ext.asyncio import AsyncSession
from upstash_ratelimit.asyncio import FixedWindow, Ratelimit, SlidingWindow
from upstash_redis.asyncio import Redis as UpstashRedis

from app.catalog import service as catalog
from app.catalog.schemas import SKU_PATTERN, ProductPublic
from app.core.config import Settings
from app.core.db import Database
from app.deps import ApiKeyHeader, SessionDep
from tests.support.settings import local_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "agentmall_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_KEY = f"bench-admin-{uuid.uuid4().hex}"
CRON_SECRET = f"bench-cron-{uuid.uuid4().hex}"
UPSTASH_TOKEN = f"bench-upstash-{uuid.uuid4().hex}"

Sku = Annotated[str, Path(pattern=SKU_PATTERN)]


def database_url() -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{PG_DATABASE}"


async def create_database() -> None:
    """Drop and re-create the bench database, then migrate it to head with Alembic."""
    await _admin_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    await _admin_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = Settings(DATABASE_URL=database_url()).DATABASE_URL
    config.attributes["configure_logger"] = False
    await asyncio.to_thread(command.upgrade, config, "head")  # env.py runs its own event loop


async def drop_database() -> None:
    await _admin_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def make_settings(backend: str, prefix: str, bridge_url: str | None = None) -> Settings:
    return local_settings(
        backend,
        prefix=prefix,
        database_url=database_url(),
        redis_url=REDIS_URL,
        admin_key=ADMIN_KEY,
        cron_secret=CRON_SECRET,
        bridge_url=bridge_url,
        upstash_token=UPSTASH_TOKEN,
        KEY_CACHE_TTL_SECONDS=3600,  # no TTL reload inside the measured run
    )


def identity(api_key: str) -> str:
    """A stable per-key identifier that does not put the secret into Redis key names."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


# -- no gate ----------------------------------------------------------------------------------


def ungated_router() -> APIRouter:
    router = APIRouter(prefix="/bench", tags=["bench"])

    @router.get("/products/{sku}", response_model=ProductPublic)
    async def get_product_ungated(session: SessionDep, sku: Sku) -> ProductPublic:
        return await catalog.get(session, sku)

    return router


# -- upstash-ratelimit, two limiters ------------------------------------------------------------


class TwoLimiters:
    """Per-minute sliding window, then a 30-day fixed window, per API key; no key lookup."""

    def __init__(self, redis: UpstashRedis, prefix: str, per_minute: int, per_month: int) -> None:
        self.minute = Ratelimit(
            redis=redis,
            limiter=SlidingWindow(max_requests=per_minute, window=60),
            prefix=f"{prefix}minute",
        )
        self.month = Ratelimit(
            redis=redis,
            limiter=FixedWindow(max_requests=per_month, window=30, unit="d"),
            prefix=f"{prefix}month",
        )

    async def __call__(self, x_api_key: ApiKeyHeader = None) -> None:
        if not x_api_key:
            raise HTTPException(status_code=401, detail="missing API key")
        who = identity(x_api_key)
        # Not atomic: the minute window is consumed before the month is checked.
        if not (await self.minute.limit(who)).allowed:
            raise HTTPException(status_code=429, detail="per-minute limit")
        if not (await self.month.limit(who)).allowed:
            raise HTTPException(status_code=429, detail="monthly limit")


def two_limiters_router(limiters: TwoLimiters) -> APIRouter:
    router = APIRouter(prefix="/bench/ratelimit", tags=["bench"])

    @router.get("/products/{sku}", response_model=ProductPublic, dependencies=[Depends(limiters)])
    async def get_product_two_limiters(session: SessionDep, sku: Sku) -> ProductPublic:
        return await catalog.get(session, sku)

    return router


# -- slowapi ------------------------------------------------------------------------------------


def slowapi_key(request: Request) -> str:
    return identity(request.headers.get("x-api-key", "anonymous"))


def slowapi_app(db: Database, limits: str, key_prefix: str, strategy: str) -> FastAPI:
    """`GET /limited/products/{sku}` (slowapi, Redis) and `GET /open/products/{sku}` (none)."""
    limiter = Limiter(
        key_func=slowapi_key, storage_uri=REDIS_URL, strategy=strategy, key_prefix=key_prefix
    )
    app = FastAPI(title="slowapi bench")
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    async def session() -> AsyncIterator[AsyncSession]:
        async with db.unit() as s:
            yield s

    Session = Annotated[AsyncSession, Depends(session)]

    @app.get("/limited/products/{sku}", response_model=ProductPublic)
    @limiter.limit(limits)
    async def get_product_slowapi(request: Request, session: Session, sku: Sku) -> ProductPublic:
        return await catalog.get(session, sku)

    @app.get("/open/products/{sku}", response_model=ProductPublic)
    async def get_product_open(session: Session, sku: Sku) -> ProductPublic:
        return await catalog.get(session, sku)

    return app


def close_slowapi(app: FastAPI) -> None:
    storage: Any = app.state.limiter._storage
    storage.storage.close()
