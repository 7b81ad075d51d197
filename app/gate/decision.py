"""What the gate decided for one admitted request (read by the headers and the middleware)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.accounts.context import KeyContext


@dataclass(slots=True)
class GateDecision:
    """An admitted request: what it cost and what the headers report."""

    context: KeyContext
    endpoint: str
    cost: int
    request_id: str
    period_start: datetime
    period_end: datetime
    now_ms: int
    used: int  # quota units used this period, this request included
    window_count: int = 0
    window_reset_ms: int = 0
    epoch: str = ""
    usage_key: str = ""
    usage_field: str = ""
    usage_bucket: str = ""  # the admission bucket (`b:<start s>`) a refund gives the units back to
    degraded: bool = False  # Redis unreachable and RATE_LIMIT_FAILURE_MODE=open
    # the product versions the same command read (app/catalog/versions.py): the hash's epoch and
    # the value of each field asked for, in order; empty when none were asked or Redis was away
    product_fields: list[str] = field(default_factory=list)
    product_reply: list[Any] = field(default_factory=list)
