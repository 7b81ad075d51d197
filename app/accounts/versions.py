"""Policy versions: how every warm instance learns, on its next request, that a key changed.

Each account and plan has a version in Postgres, bumped by any change a cached `KeyContext` must
notice (a key revoked or suspended, a plan edited, an account moved to another plan). Once the
change has committed, the new version is published to Redis, where the gate script compares it
with the cached one on every request.

A publish must not be lost: the gate cannot tell a version that was never published from one that
did not change, so a lost publish leaves warm instances serving the old policy (a revoked key, say)
until their cache TTL (`KEY_CACHE_TTL_SECONDS`). One slow Redis call anywhere on the instance is
enough to lose it: the port then refuses every call for its cooldown, and a commit in that second
would publish nothing. So a failed publish is sent again, after the port's cooldown, up to
`PUBLISH_ATTEMPTS` times (under 4 s in all with the default settings, and only when Redis is slow
or away). That is safe: `SET_VERSION` is idempotent and never lowers a version. Only when every
attempt fails is the change left to the cache TTL, and that is logged as an error. The gate's own
repair (`Gate._repair`) publishes with one attempt: it runs inside a metered request.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort, RedisUnavailable, Script

logger = logging.getLogger("agentmall.accounts")

PUBLISH_ATTEMPTS = 3
COOLDOWN_MARGIN_S = 0.05  # wake up after the port's cooldown has ended, never just before

# Publish a version written to Postgres; never move it backwards.
SET_VERSION = Script(
    """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
)

# Put Postgres's versions back where Redis holds newer ones, but only where Redis still holds the
# value the caller saw (a version published a moment later is left alone).
# KEYS: account version, plan version; ARGV: seen account, truth account, seen plan, truth plan
REPAIR_VERSIONS = Script(
    """
for i = 1, 2 do
  local seen, truth = ARGV[2 * i - 1], ARGV[2 * i]
  if redis.call('GET', KEYS[i]) == seen and tonumber(seen) > tonumber(truth) then
    redis.call('SET', KEYS[i], truth)
  end
end
return 1
"""
)


class PolicyVersions:
    """Publishes account and plan versions to Redis."""

    def __init__(self, redis: RedisPort, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def publish(
        self, redis_key: str, version: int, *, attempts: int = PUBLISH_ATTEMPTS
    ) -> bool:
        """Raise the published version (after the change is committed); True once Redis took it.

        A failed attempt is sent again after the port's cooldown (see the module docstring)."""
        failure: RedisUnavailable | None = None
        for attempt in range(attempts):
            if attempt:  # the failure put the port in its cooldown: wait until it has ended
                await asyncio.sleep(self.redis.cooldown + COOLDOWN_MARGIN_S)
            try:
                await self.redis.run_script(SET_VERSION, [redis_key], [version])
                return True
            except RedisUnavailable as exc:
                failure = exc
        logger.error(
            "could not publish policy version %s (%d attempt(s): %s); warm caches notice the "
            "change only within their TTL",
            version,
            attempts,
            failure,
        )
        return False

    async def repair(
        self,
        account_id: str,
        plan_code: str,
        *,
        seen: tuple[int, int],
        truth: tuple[int, int],
    ) -> None:
        """Lower versions that Redis holds ahead of Postgres (a restore, a shared Redis)."""
        await self.redis.run_script(
            REPAIR_VERSIONS,
            [self.keys.account_version(account_id), self.keys.plan_version(plan_code)],
            [seen[0], truth[0], seen[1], truth[1]],
        )

    def account_after_commit(self, session: AsyncSession, account_id: str, version: int) -> None:
        """Publish an account's version once the session's unit of work has committed."""
        self._after_commit(session, self.keys.account_version(account_id), version)

    def plan_after_commit(self, session: AsyncSession, plan_code: str, version: int) -> None:
        """Publish a plan's version once the session's unit of work has committed."""
        self._after_commit(session, self.keys.plan_version(plan_code), version)

    def _after_commit(self, session: AsyncSession, redis_key: str, version: int) -> None:
        async def publish() -> None:
            await self.publish(redis_key, version)

        after_commit(session, publish)
