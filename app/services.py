"""The per-app services: built once per app (never at import time), shared by its requests.

This is where wiring happens: which domain object gets which client. Domains never import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from app.accounts.versions import PolicyVersions
from app.catalog.cache import ProductCache
from app.catalog.reads import ProductReads
from app.catalog.search.engine import SearchEngine, engine_for
from app.catalog.versions import ProductVersions
from app.core.client_ip import ClientIP
from app.core.config import Settings
from app.core.db import Database
from app.gate.cache import KeyCache
from app.gate.keys import KeyResolver
from app.gate.public_limits import PublicLimiter
from app.gate.service import Gate
from app.redis.adapters import build_redis
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort

if TYPE_CHECKING:
    import stripe


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: RedisPort
    keys: RedisKeys = field(init=False)
    versions: PolicyVersions = field(init=False)
    client_ip: ClientIP = field(init=False)
    gate: Gate = field(init=False)
    public_limiter: PublicLimiter = field(init=False)
    search: SearchEngine = field(init=False)
    product_versions: ProductVersions = field(init=False)
    products: ProductCache = field(init=False)
    product_reads: ProductReads = field(init=False)

    def __post_init__(self) -> None:
        self.keys = RedisKeys(self.settings.REDIS_KEY_PREFIX)
        self.versions = PolicyVersions(self.redis, self.keys)
        # every unit of work that writes a product announces it (app/catalog/versions.py)
        self.product_versions = ProductVersions(self.redis, self.keys)
        self.db.hooks.append(self.product_versions)
        # off with the embedded Redis: it is per process, so another process's writes (the
        # importer, the admin CLI) would never reach this one's versions
        embedded = self.settings.redis_backend == "embedded"
        self.products = ProductCache(
            0 if embedded else self.settings.PRODUCT_CACHE_MAX_ENTRIES,
            self.settings.PRODUCT_CACHE_MAX_BYTES,
        )
        self.product_reads = ProductReads(self.products, self.product_versions)
        self.client_ip = ClientIP.from_settings(self.settings)
        cache = KeyCache(self.settings.KEY_CACHE_TTL_SECONDS)
        resolver = KeyResolver(self.settings, self.redis, self.keys, cache)
        self.gate = Gate(self.settings, self.redis, self.keys, resolver, db=self.db)
        self.public_limiter = PublicLimiter(self.settings, self.redis, self.client_ip)
        self.search = engine_for(self.settings.SEARCH_ENGINE)

    @cached_property
    def stripe(self) -> stripe.StripeClient | None:
        """The Stripe client (None: billing not configured), built on first use: the Stripe
        SDK is imported only when a billing route, cron or webhook needs it (cold starts)."""
        from app.billing.stripe_client import build_stripe

        return build_stripe(self.settings)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        return cls(settings=settings, db=Database(settings), redis=build_redis(settings))

    async def close(self) -> None:
        await self.redis.close()
        await self.db.dispose()
