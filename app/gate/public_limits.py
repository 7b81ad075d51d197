"""Per-client-IP limits on the public endpoints (signup, plans, readiness): `upstash-ratelimit`.

Its sliding-window limiter fits here: one identifier, one limit, rate 1 (its known bug of counting a
denied request only bites with rate > 1). It only needs an object with the upstash-redis `eval`
signature, which every `RedisPort` adapter provides, so the same limiter runs on Upstash, on any
Redis and on the embedded one. It is pinned to 1.1.0: 1.2 prefixes its scripts with an Upstash-only
shebang flag that stock Redis rejects.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import Request
from upstash_ratelimit.asyncio import Ratelimit, SlidingWindow

from app.core.client_ip import ClientIP, limit_bucket
from app.core.config import Settings
from app.core.errors import AppError
from app.gate.errors import RateLimiterUnavailable
from app.redis.port import RedisPort, RedisUnavailable


class TooManyFromThisAddress(AppError):
    status_code = 429
    code = "rate_limit_exceeded"
    default_message = "Too many requests from this address; retry after the Retry-After delay."


class PublicLimiter:
    def __init__(
        self, settings: Settings, redis: RedisPort, client_ip: ClientIP | None = None
    ) -> None:
        self.settings = settings
        self.addresses = client_ip or ClientIP.from_settings(settings)
        prefix = f"{settings.REDIS_KEY_PREFIX}ip"
        redis_any: Any = redis  # duck-typed: upstash-ratelimit only calls `eval`
        self.signup = Ratelimit(
            redis=redis_any,
            limiter=SlidingWindow(max_requests=settings.SIGNUPS_PER_IP_PER_HOUR, window=3600),
            prefix=f"{prefix}:signup",
        )
        self.read = Ratelimit(
            redis=redis_any,
            limiter=SlidingWindow(
                max_requests=settings.PUBLIC_REQUESTS_PER_IP_PER_MINUTE, window=60
            ),
            prefix=f"{prefix}:read",
        )
        # Its own bucket: a monitor polling readiness never eats the address's `/v1/plans` budget.
        self.ready = Ratelimit(
            redis=redis_any,
            limiter=SlidingWindow(
                max_requests=settings.PUBLIC_REQUESTS_PER_IP_PER_MINUTE, window=60
            ),
            prefix=f"{prefix}:ready",
        )

        # Sign-in links (the portal): per address and per email, each a sliding hour.
        self.login_ip = Ratelimit(
            redis=redis_any,
            limiter=SlidingWindow(max_requests=settings.SIGN_IN_LINKS_PER_IP_PER_HOUR, window=3600),
            prefix=f"{prefix}:login",
        )
        self.login_email = Ratelimit(
            redis=redis_any,
            limiter=SlidingWindow(
                max_requests=settings.SIGN_IN_LINKS_PER_EMAIL_PER_HOUR, window=3600
            ),
            prefix=f"{settings.REDIS_KEY_PREFIX}email:login",
        )

    def client_ip(self, request: Request) -> str:
        """The caller's address: proxy headers only as far as they are trusted (`client_ip`)."""
        return self.addresses.of(request)

    async def check(self, limiter: Ratelimit, request: Request) -> None:
        """Raise 429 when this address is over the limit; apply the failure mode if Redis is out."""
        try:
            await self.count(limiter, request)
        except RedisUnavailable as exc:
            if self.settings.RATE_LIMIT_FAILURE_MODE == "closed":
                raise RateLimiterUnavailable() from exc

    async def check_identifier(self, limiter: Ratelimit, identifier: str) -> None:
        """As `check`, for something other than the address (e.g. a hashed email)."""
        try:
            await self._count(limiter, identifier)
        except RedisUnavailable as exc:
            if self.settings.RATE_LIMIT_FAILURE_MODE == "closed":
                raise RateLimiterUnavailable() from exc

    async def count(self, limiter: Ratelimit, request: Request) -> None:
        """Count this request against its address: 429 when over the limit; `RedisUnavailable`
        when Redis did not answer (the caller decides what that means)."""
        await self._count(limiter, limit_bucket(self.client_ip(request)))

    async def _count(self, limiter: Ratelimit, identifier: str) -> None:
        result = await limiter.limit(identifier)
        if not result.allowed:
            retry = max(1, math.ceil(result.reset - time.time()))
            raise TooManyFromThisAddress(
                headers={
                    "Retry-After": str(retry),
                    "X-RateLimit-Limit": str(result.limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(result.reset)),
                },
                retry_after=retry,
            )
