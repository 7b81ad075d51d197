"""The per-app services: built once in the lifespan (never at import time), shared by requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.config import Settings
from app.core.db import Database
from app.gate.context import KeyCache
from app.gate.public_limits import PublicLimiter
from app.gate.service import Gate
from app.redis.adapters import build_redis
from app.redis.port import RedisPort


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: RedisPort
    gate: Gate = field(init=False)
    public_limiter: PublicLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.gate = Gate(self.settings, self.redis, KeyCache(self.settings.KEY_CACHE_TTL_SECONDS))
        self.public_limiter = PublicLimiter(self.settings, self.redis)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        return cls(settings=settings, db=Database(settings), redis=build_redis(settings))

    async def close(self) -> None:
        await self.redis.close()
        await self.db.dispose()
