"""The rate-limit headers of every metered response (SPEC §5).

`X-RateLimit-*` describe whichever window is closest to running out (the minute window, or the
monthly quota on hard-gated plans); `X-Quota-*` always describe the month; the IETF draft fields
`RateLimit-Policy` / `RateLimit` describe both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from starlette.types import Message

from app.gate.decision import GateDecision
from app.gate.scripts import QUOTA


def rate_limit_headers(decision: GateDecision, denied: int | None = None) -> dict[str, str]:
    plan = decision.context.plan

    def seconds_until(ms: int) -> int:
        return max(0, math.ceil((ms - decision.now_ms) / 1000))

    rpm = plan.requests_per_minute
    minute_remaining = max(0, rpm - decision.window_count)
    if decision.degraded:
        minute_remaining = rpm  # unknown while Redis is away; the header below says so
    minute_reset_ms = decision.window_reset_ms or decision.now_ms + 60_000
    minute_reset = math.ceil(minute_reset_ms / 1000)
    quota = plan.included_calls
    quota_remaining = max(0, quota - decision.used)
    quota_reset = int(decision.period_end.timestamp())
    period_s = quota_reset - int(decision.period_start.timestamp())

    closest_is_quota = plan.hard_limit and (
        denied == QUOTA or (denied is None and quota_remaining < minute_remaining)
    )
    if closest_is_quota:
        limit, remaining, reset, reset_ms = quota, quota_remaining, quota_reset, quota_reset * 1000
    else:
        limit, remaining, reset, reset_ms = rpm, minute_remaining, minute_reset, minute_reset_ms
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
        "X-Quota-Limit": str(quota),
        "X-Quota-Remaining": str(quota_remaining),
        "X-Quota-Reset": str(quota_reset),
        "RateLimit-Policy": f'"minute";q={rpm};w=60, "month";q={quota};w={period_s}',
        "RateLimit": (
            f'"minute";r={minute_remaining};t={seconds_until(minute_reset_ms)}, '
            f'"month";r={quota_remaining};t={seconds_until(quota_reset * 1000)}'
        ),
    }
    if denied is not None:
        headers["Retry-After"] = str(max(1, math.ceil((reset_ms - decision.now_ms) / 1000)))
    if decision.degraded:
        headers["X-RateLimit-Degraded"] = "1"
    return headers


def with_headers(message: Message, extra: Mapping[str, str] | None) -> Message:
    """An `http.response.start` message with `extra` added, except the names it already has."""
    if not extra:
        return message
    headers = list(message.get("headers", []))
    present = {bytes(name).lower() for name, _ in headers}
    for name, value in extra.items():
        if name.lower().encode() not in present:
            headers.append((name.lower().encode(), value.encode()))
    return {**message, "headers": headers}
