"""The gate: key → plan gate → rate gate, in one Redis command for a warm key.

`Gate.check` resolves the key (instance cache, else Postgres), computes the plan-gate verdict from
the cached context, and runs the gate script once. The script first compares the cached policy
versions with Redis; if the cache is stale it answers STALE without counting anything, the context
is reloaded from Postgres and the script runs again. Steady state: 1 Redis command, 0 queries.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repo
from app.accounts.context import KeyContext
from app.core.apikeys import hash_key, looks_like_key
from app.core.config import Settings
from app.gate import errors
from app.gate.cache import MISSING, KeyCache
from app.gate.decision import GateDecision
from app.gate.headers import rate_limit_headers
from app.gate.scripts import (
    ADMIT,
    FEATURE,
    GATE,
    PAYMENT,
    QUOTA,
    RATE,
    REFUND,
    STALE,
    SUSPENDED,
)
from app.models import utcnow
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort, RedisUnavailable
from app.usage.period import current_period

logger = logging.getLogger("agentmall.gate")

WINDOW_MS = 60_000
PAST_DUE_STATUSES = frozenset({"past_due", "unpaid"})
USAGE_RETENTION_S = 40 * 86_400  # usage hashes outlive their period so the roll-up can catch up


def plan_verdict(context: KeyContext, feature: str) -> int:
    """The plan gate, decided from the (freshness-checked) context."""
    if context.key_status == "suspended":
        return SUSPENDED
    if feature not in context.plan.features:
        return FEATURE
    if context.subscription_status in PAST_DUE_STATUSES:
        return PAYMENT
    return ADMIT


class Gate:
    def __init__(
        self, settings: Settings, redis: RedisPort, keys: RedisKeys, cache: KeyCache
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.cache = cache
        self._loading: dict[str, asyncio.Future[KeyContext | None]] = {}

    async def resolve(self, session: AsyncSession, raw_key: str | None) -> tuple[str, KeyContext]:
        """The key's hash and context (cache first); 401 for a missing, unknown or revoked key."""
        if not raw_key:
            raise errors.MissingApiKey()
        if not looks_like_key(raw_key):
            raise errors.InvalidApiKey()
        key_hash = hash_key(raw_key)
        cached = self.cache.get(key_hash)
        context = await self._load(session, key_hash) if cached is MISSING else cached
        if not isinstance(context, KeyContext) or context.key_status == "revoked":
            raise errors.InvalidApiKey()
        return key_hash, context

    async def _load(self, session: AsyncSession, key_hash: str) -> KeyContext | None:
        """Load from Postgres; concurrent misses for one key share a single query (no stampede)."""
        pending = self._loading.get(key_hash)
        if pending is None:
            pending = asyncio.ensure_future(
                accounts_repo.load_key_context(session, key_hash=key_hash, now=utcnow())
            )
            self._loading[key_hash] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key_hash, None))
        context = await asyncio.shield(pending)
        self.cache.put(key_hash, context)
        return context

    async def check(
        self,
        session: AsyncSession,
        *,
        raw_key: str | None,
        feature: str,
        endpoint: str,
        cost: int = 1,
    ) -> GateDecision:
        """Admit the request or raise the gate's error; counts it when admitted."""
        key_hash, context = await self.resolve(session, raw_key)
        try:
            reply, decision = await self._run(context, feature, endpoint, cost)
            if reply[0] == STALE:
                fresh = await self._load(session, key_hash)
                if fresh is None or fresh.key_status == "revoked":
                    raise errors.InvalidApiKey()
                context = fresh
                # Postgres is never behind Redis (versions are published after commit).
                reply, decision = await self._run(context, feature, endpoint, cost)
        except RedisUnavailable:
            return self._degraded(context, feature, endpoint, cost)
        self._raise_for(reply[0], decision)
        return decision

    def _decision(self, context: KeyContext, endpoint: str, cost: int) -> GateDecision:
        """What this request would count, before Redis says whether it may."""
        now = utcnow()
        period_start, period_end = current_period(
            context.paid_period_start, context.paid_period_end, now
        )
        base_used = context.base_used if context.base_period_start == period_start else 0
        return GateDecision(
            context=context,
            endpoint=endpoint,
            cost=cost,
            period_start=period_start,
            period_end=period_end,
            now_ms=int(now.timestamp() * 1000),
            used=base_used,
            usage_key=self.keys.usage(context.account_id, period_start),
            usage_field=f"{now.date().isoformat()}|{endpoint}",
        )

    async def _run(
        self, context: KeyContext, feature: str, endpoint: str, cost: int
    ) -> tuple[list[Any], GateDecision]:
        decision = self._decision(context, endpoint, cost)
        plan = context.plan
        ttl = int(decision.period_end.timestamp()) - decision.now_ms // 1000 + USAGE_RETENTION_S
        reply = await self.redis.run_script(
            GATE,
            [
                self.keys.account_version(context.account_id),
                self.keys.plan_version(plan.code),
                self.keys.window(context.account_id),
                decision.usage_key,
                self.keys.dirty,
            ],
            [
                context.account_version,
                plan.version,
                plan_verdict(context, feature),
                decision.now_ms,
                WINDOW_MS,
                plan.requests_per_minute,
                plan.included_calls,
                1 if plan.hard_limit else 0,
                cost,
                uuid.uuid4().hex,
                decision.usage_field,
                decision.used,  # the rolled-up base, used only if Redis has no counter yet
                uuid.uuid4().hex[:16],
                ttl,
            ],
        )
        decision.window_count = int(reply[3])
        decision.window_reset_ms = int(reply[4])
        decision.used = int(reply[5])
        decision.epoch = str(reply[6] or "")
        return list(reply), decision

    def _raise_for(self, status: int, decision: GateDecision) -> None:
        base = self.settings.PUBLIC_BASE_URL
        if status == ADMIT:
            return
        if status == SUSPENDED:
            raise errors.KeySuspended()
        if status == FEATURE:
            raise errors.FeatureNotInPlan(upgrade_url=f"{base}/v1/plans")
        if status == PAYMENT:
            raise errors.PaymentRequired(billing_portal_url=f"{base}/v1/billing/portal")
        headers = rate_limit_headers(decision, denied=status)
        if status == QUOTA:
            reset = int(decision.period_end.timestamp())
            raise errors.QuotaExceeded(
                headers=headers,
                upgrade_url=f"{base}/v1/plans",
                reset=reset,
                reset_at=decision.period_end.isoformat(),
            )
        if status == RATE:
            raise errors.RateLimitExceeded(headers=headers, retry_after=int(headers["Retry-After"]))
        raise RuntimeError(f"unexpected gate status {status}")

    def _degraded(
        self, context: KeyContext, feature: str, endpoint: str, cost: int
    ) -> GateDecision:
        """Redis is unreachable: refuse (closed) or serve on the cached context (open)."""
        if self.settings.RATE_LIMIT_FAILURE_MODE == "closed":
            raise errors.RateLimiterUnavailable()
        decision = self._decision(context, endpoint, cost)
        decision.used += cost
        decision.degraded = True
        self._raise_for(plan_verdict(context, feature), decision)
        return decision

    async def refund(self, decision: GateDecision) -> None:
        """Give back the quota an admitted request took when its handler did not succeed."""
        try:
            await self.redis.run_script(
                REFUND,
                [decision.usage_key, self.keys.dirty],
                [decision.epoch, decision.usage_field, decision.cost, decision.now_ms],
            )
        except RedisUnavailable:
            logger.warning("refund of %s unit(s) failed: Redis unavailable", decision.cost)
