"""Per-account and per-address limits on the billing endpoints, in one Redis command.

Every billing request (Checkout, the Customer Portal, and the keyless upgrade and manage links)
may cost a Stripe call, so neither one account nor one client address may make many: at most
`BILLING_REQUESTS_PER_ACCOUNT_PER_HOUR` and `BILLING_REQUESTS_PER_IP_PER_HOUR` in any sliding
hour. One script checks both logs and records the request in both only if both admit it, so a
refused request spends nothing and the budget is one command per billing request.

The script (KEYS: the account's log, the address's log; ARGV: window ms, account limit, address
limit, a unique member) keeps each log as a sorted set of request times (Redis's own clock, as
the gate does, so instances with skewed clocks agree), drops entries older than the window, and
answers {1, 0, 0} when admitted, else {0, wait ms, which limit (1 account, 2 address)}.
"""

from __future__ import annotations

import math
import secrets
import time

from app.core.client_ip import limit_bucket
from app.core.config import Settings
from app.core.errors import AppError
from app.gate.errors import RateLimiterUnavailable
from app.redis.port import RedisPort, RedisUnavailable, Script

WINDOW_S = 3600

SCRIPT = Script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local wait, which = 0, 0
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limits[i] then
    -- the entry whose leaving brings the count under the limit
    local due = redis.call('ZRANGE', KEYS[i], count - limits[i], count - limits[i], 'WITHSCORES')
    local w = tonumber(due[2]) + window - now
    if w > wait then wait, which = w, i end
  end
end
if which > 0 then
  return {0, math.max(wait, 1), which}
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], window)
end
return {1, 0, 0}
"""
)


class TooManyBillingRequests(AppError):
    status_code = 429
    code = "rate_limit_exceeded"
    default_message = "Too many billing requests; retry after the Retry-After delay."


class BillingLimiter:
    """The billing endpoints' two sliding-hour limits, for one request from `client_ip`."""

    def __init__(self, settings: Settings, redis: RedisPort, client_ip: str) -> None:
        self.settings = settings
        self.redis = redis
        self.client_ip = client_ip
        self.prefix = f"{settings.REDIS_KEY_PREFIX}bill:"

    async def check(self, account_id: str, *, keyless: bool = False) -> None:
        """Count one billing request, or raise 429 (and apply the failure mode if Redis is out).

        `keyless`: a follow of a one-click link. Those count in a budget of their own, so link
        scanners or an agent retrying a link in a notice can never lock the owner out of their
        own Checkout or Portal."""
        limits = (
            self.settings.BILLING_REQUESTS_PER_ACCOUNT_PER_HOUR,
            self.settings.BILLING_REQUESTS_PER_IP_PER_HOUR,
        )
        scope = "link" if keyless else "a"
        keys = [
            f"{self.prefix}{scope}:{account_id}",
            f"{self.prefix}ip:{limit_bucket(self.client_ip)}",
        ]
        member = secrets.token_hex(8)  # two requests in one millisecond are two entries
        try:
            reply = await self.redis.run_script(
                SCRIPT, keys, [WINDOW_S * 1000, limits[0], limits[1], member]
            )
        except RedisUnavailable as exc:
            if self.settings.RATE_LIMIT_FAILURE_MODE == "closed":
                raise RateLimiterUnavailable() from exc
            return  # open: Checkout reuse still bounds the sessions an account can open
        admitted, wait_ms, which = (int(v) for v in reply)
        if not admitted:
            raise _refusal(limits[which - 1], wait_ms, "account" if which == 1 else "address")


def _refusal(limit: int, wait_ms: int, scope: str) -> TooManyBillingRequests:
    retry = max(1, math.ceil(wait_ms / 1000))
    return TooManyBillingRequests(
        f"Too many billing requests from this {scope} (at most {limit} an hour); "
        f"retry in {retry} s.",
        headers={
            "Retry-After": str(retry),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(time.time()) + retry),
        },
        retry_after=retry,
        limit_scope=scope,
    )
