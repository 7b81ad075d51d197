"""What an API key resolves to: everything the gate needs, loaded from Postgres and cached."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    code: str
    name: str
    included_calls: int
    requests_per_minute: int
    features: frozenset[str]
    hard_limit: bool
    version: int


@dataclass(frozen=True, slots=True)
class KeyContext:
    key_id: str
    key_status: str  # active | suspended | revoked
    account_id: str
    role: str
    subscription_status: str
    paid_period_start: datetime | None
    paid_period_end: datetime | None
    account_version: int
    plan: PlanPolicy
    base_period_start: datetime  # the period `base_used` was summed for
    base_used: int  # usage already rolled up into Postgres for that period
