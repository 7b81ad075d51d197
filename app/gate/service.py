"""The gate: key → plan gate → rate gate, in one Redis command for a warm key.

`Gate.check` resolves the key (instance cache, else Postgres), computes the plan-gate verdict from
the cached context, and runs the gate script once. The script first compares the cached policy
versions with Redis; if the cache is stale it answers STALE without counting anything, the context
is reloaded from Postgres and the script runs again. Steady state: 1 Redis command, 0 queries.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.context import KeyContext
from app.accounts.versions import PolicyVersions
from app.core.config import Settings
from app.core.db import Database
from app.core.links import manage_url, upgrade_url
from app.gate import errors
from app.gate.cache import KeyCache
from app.gate.decision import GateDecision
from app.gate.headers import rate_limit_headers
from app.gate.keys import ACCOUNT_SUSPENDED, KeyResolver
from app.gate.scripts import (
    ADMIT,
    FEATURE,
    GATE,
    LATE,
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
from app.usage import service as usage_service
from app.usage.period import current_period, month_bounds, next_paid_period
from app.usage.service import LAST_USED_RETENTION_S, REQUEST_ID_RETENTION_MS

logger = logging.getLogger("agentmall.gate")

PAST_DUE_STATUSES = frozenset({"past_due", "unpaid"})
USAGE_RETENTION_S = 40 * 86_400  # usage hashes outlive their period so the roll-up can catch up


def plan_verdict(context: KeyContext, feature: str) -> int:
    """The plan gate, decided from the (freshness-checked) context."""
    if context.suspended:  # the key, or its whole account
        return SUSPENDED
    if feature not in context.plan.features:
        return FEATURE
    if context.subscription_status in PAST_DUE_STATUSES:
        return PAYMENT
    return ADMIT


class Gate:
    def __init__(
        self,
        settings: Settings,
        redis: RedisPort,
        keys: RedisKeys,
        resolver: KeyResolver | None = None,
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        self.db = db  # where a refused call the gate may have counted is voided (closed mode)
        self.redis = redis
        self.keys = keys
        if resolver is None:
            cache = KeyCache(settings.KEY_CACHE_TTL_SECONDS)
            resolver = KeyResolver(settings, redis, keys, cache)
        self.resolver = resolver
        self.unsettled = False  # this instance served calls while Redis was away, not settled
        self.cache = resolver.cache  # what `_fresh` updates, and what tests clear

    async def check(
        self,
        session: AsyncSession,
        *,
        raw_key: str | None,
        feature: str,
        endpoint: str,
        cost: int = 1,
        client_ip: str = "",
        products: Sequence[str] = (),
    ) -> GateDecision:
        """Admit the request or raise the gate's error; counts it when admitted.

        `products`: fields of the product versions hash (lower-cased SKUs) the request reads;
        an admitted request gets their values from the same command (`product_reply`)."""
        key_hash, context = await self.resolver.resolve(session, raw_key, client_ip)
        request_id = secrets.token_hex(8)
        fields = list(products)
        try:
            run = (context, feature, endpoint, cost, request_id, fields)
            reply, decision = await self._run(*run)
            if reply[0] == STALE:  # a policy changed since this instance cached the key
                context = await self._fresh(session, key_hash)
                reply, decision = await self._run(context, *run[1:])
            if reply[0] == STALE:  # Redis is ahead of Postgres itself: repair, then go on
                context = await self._repair(session, key_hash, context, reply)
                reply, decision = await self._run(context, *run[1:])
        except RedisUnavailable:
            return await self._degraded(context, feature, endpoint, cost, request_id)
        self._raise_for(reply[0], decision)
        return decision

    async def _fresh(self, session: AsyncSession, key_hash: str) -> KeyContext:
        """The key as Postgres has it now (never a load that started before the caller asked)."""
        context = await self.resolver.reload(session, key_hash)
        if context is None or context.key_status == "revoked":
            raise errors.InvalidApiKey()
        return context

    async def _repair(
        self, session: AsyncSession, key_hash: str, context: KeyContext, reply: list[Any]
    ) -> KeyContext:
        """Redis holds newer policy versions than Postgres (a restored database, or two
        environments sharing one Redis). Postgres is the truth: put its versions back in Redis
        (only where Redis still holds what we saw), reload, and publish what we loaded."""
        seen_account, seen_plan = int(reply[1]), int(reply[2])
        logger.warning(
            "policy versions in Redis are ahead of Postgres (account %s: %s > %s, plan %s: %s > "
            "%s); republishing Postgres's",
            context.account_id,
            seen_account,
            context.account_version,
            context.plan.code,
            seen_plan,
            context.plan.version,
        )
        versions = PolicyVersions(self.redis, self.keys)
        await versions.repair(
            context.account_id,
            context.plan.code,
            seen=(seen_account, seen_plan),
            truth=(context.account_version, context.plan.version),
        )
        fresh = await self._fresh(session, key_hash)
        # One attempt each, no retry: this is a metered request, and REPAIR has already put
        # Postgres's versions back; these publish what was just reloaded, in case it is newer.
        account_key = self.keys.account_version(fresh.account_id)
        await versions.publish(account_key, fresh.account_version, attempts=1)
        await versions.publish(
            self.keys.plan_version(fresh.plan.code), fresh.plan.version, attempts=1
        )
        return fresh

    def _fallback_decision(
        self, context: KeyContext, endpoint: str, cost: int, request_id: str
    ) -> GateDecision:
        """What this request counts when Redis cannot say (degraded mode): this instance's clock."""
        now = utcnow()
        start, end = current_period(context.paid_period_start, context.paid_period_end, now)
        return GateDecision(
            context=context,
            endpoint=endpoint,
            cost=cost,
            request_id=request_id,
            period_start=start,
            period_end=end,
            now_ms=int(now.timestamp() * 1000),
            used=(context.base_used if context.base_period_start == start else 0) + cost,
            usage_key=self.keys.usage(context.account_id, start),
            usage_field=f"{now.date().isoformat()}|{endpoint}",
        )

    async def _run(
        self,
        context: KeyContext,
        feature: str,
        endpoint: str,
        cost: int,
        request_id: str,
        products: list[str],
    ) -> tuple[list[Any], GateDecision]:
        plan = context.plan
        paid_start, paid_end = context.paid_period_start, context.paid_period_end
        upcoming_end = (
            next_paid_period(paid_start, paid_end)[1] if paid_start and paid_end else None
        )
        reply = await self.redis.run_script(
            GATE,
            [
                self.keys.account_version(context.account_id),
                self.keys.plan_version(plan.code),
                self.keys.window(context.account_id),
                self.keys.dirty,
                self.keys.ids(context.account_id),
                self.keys.last_used(context.account_id),
                self.keys.product_versions,
            ],
            [
                context.account_version,
                plan.version,
                plan_verdict(context, feature),
                plan.requests_per_minute,
                plan.included_calls,
                1 if plan.hard_limit else 0,
                cost,
                endpoint,
                context.base_used,  # the rolled-up base, used only if Redis has no counter yet
                int(context.base_period_start.timestamp()),
                int(paid_start.timestamp()) if paid_start and paid_end else 0,
                int(paid_end.timestamp()) if paid_start and paid_end else 0,
                secrets.token_hex(8),  # the epoch of a usage hash this call would create
                self.keys.usage_prefix(context.account_id),
                self.keys.top_prefix,
                USAGE_RETENTION_S,
                request_id,
                REQUEST_ID_RETENTION_MS,
                context.account_id,
                int(upcoming_end.timestamp()) if upcoming_end else 0,
                self.settings.USAGE_BUCKET_SECONDS,
                context.key_id,  # recorded as last used only if the request is admitted
                LAST_USED_RETENTION_S,
                *([secrets.token_hex(8), *products] if products else []),
            ],
        )
        reply = list(reply)
        start = datetime.fromtimestamp(int(reply[8]), UTC)
        decision = GateDecision(
            context=context,
            endpoint=endpoint,
            cost=cost,
            request_id=request_id,
            period_start=start,
            period_end=datetime.fromtimestamp(int(reply[9]), UTC),
            now_ms=int(reply[7]),
            used=int(reply[5]),
            window_count=int(reply[3]),
            window_reset_ms=int(reply[4]),
            epoch=str(reply[6] or ""),
            usage_key=self.keys.usage(context.account_id, start),
            usage_field=str(reply[10] or ""),
            usage_bucket=str(reply[11] or ""),
            product_fields=products,
            product_reply=list(reply[12] or []) if len(reply) > 12 else [],
        )
        return reply, decision

    def _raise_for(self, status: int, decision: GateDecision) -> None:
        plan = decision.context.plan
        if status == ADMIT:
            return
        if status == SUSPENDED:
            suspended_account = decision.context.account_status == "suspended"
            raise errors.KeySuspended(ACCOUNT_SUSPENDED if suspended_account else None)
        if status == FEATURE:
            raise errors.FeatureNotInPlan(upgrade_url=self._upgrade_url(decision))
        if status == PAYMENT:
            portal = manage_url(self.settings, decision.context.account_id)
            raise errors.PaymentRequired(billing_portal_url=portal)
        if status == RATE and decision.cost > plan.requests_per_minute:
            raise errors.CostExceedsRateLimit(
                f"This request costs {decision.cost} units but your plan allows "
                f"{plan.requests_per_minute} per minute; split it into smaller requests.",
                cost=decision.cost,
                requests_per_minute=plan.requests_per_minute,
            )
        if status in (STALE, LATE):  # a policy is changing this very moment: nothing counted
            raise errors.RetryShortly()
        headers = rate_limit_headers(decision, denied=status)
        if status == QUOTA:
            reset = int(decision.period_end.timestamp())
            raise errors.QuotaExceeded(
                headers=headers,
                upgrade_url=self._upgrade_url(decision),
                reset=reset,
                reset_at=decision.period_end.isoformat(),
            )
        raise errors.RateLimitExceeded(headers=headers, retry_after=int(headers["Retry-After"]))

    def _upgrade_url(self, decision: GateDecision) -> str:
        """A signed one-click link that opens Checkout for this account (no key needed)."""
        return upgrade_url(self.settings, decision.context.account_id)

    async def _degraded(
        self, context: KeyContext, feature: str, endpoint: str, cost: int, request_id: str
    ) -> GateDecision:
        """Redis is unreachable: refuse (closed) or serve on the cached context (open)."""
        decision = self._fallback_decision(context, endpoint, cost, request_id)
        if self.settings.RATE_LIMIT_FAILURE_MODE == "closed":
            # the script may have counted it, its answer lost: void it
            await self.record_unsettled(decision, -cost)
            raise errors.RateLimiterUnavailable()
        decision.degraded = True
        self._raise_for(plan_verdict(context, feature), decision)
        return decision

    async def record_unsettled(self, decision: GateDecision, units: int) -> None:
        """Keep a call whose count Redis did not confirm (served while Redis was away, a lost gate
        answer, an unconfirmed refund) by request id until the settlement resolves it against
        Redis's ids (`units` < 0: a void); the next request that reaches Redis starts it."""
        if self.db is None:
            return
        await usage_service.record_degraded(
            self.db,
            request_id=decision.request_id,
            account_id=decision.context.account_id,
            period_start=decision.period_start,
            usage_field=decision.usage_field,
            units=units,
        )
        self.unsettled = True

    async def refund(self, decision: GateDecision) -> None:
        """Give back the quota an admitted request took when its handler did not succeed."""
        month_start = month_bounds(datetime.fromtimestamp(decision.now_ms / 1000, UTC))[0]
        try:
            refunded = await self.redis.run_script(
                REFUND,
                [
                    decision.usage_key,
                    self.keys.dirty,
                    self.keys.top(int(month_start.timestamp())),
                    self.keys.ids(decision.context.account_id),
                ],
                [
                    decision.epoch,
                    decision.usage_field,
                    decision.cost,
                    decision.context.account_id,
                    decision.usage_bucket,
                    decision.request_id,
                ],
            )
        except RedisUnavailable:
            # It may have run or not: a void by request id, resolved by the settlement (REFUND)
            logger.warning("refund of %s unit(s) unconfirmed: Redis unavailable", decision.cost)
            await self.record_unsettled(decision, -decision.cost)
            return
        if int(refunded) == 2:  # see REFUND: the request outlived USAGE_SETTLE_AFTER_SECONDS
            logger.warning(
                "a failed call of account %s answered after its usage bucket was billed: it stays "
                "counted (raise USAGE_SETTLE_AFTER_SECONDS above the longest request)",
                decision.context.account_id,
            )
