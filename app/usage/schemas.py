"""Usage payloads."""

from datetime import date, datetime
from typing import Literal

from app.core.schemas import Schema


class DayUsage(Schema):
    date: date
    count: int


class UsagePublic(Schema):
    account_id: str
    plan: str
    period_start: datetime
    period_end: datetime
    used: int
    quota: int
    remaining: int
    percent: float
    overage: int
    requests_per_minute: int
    # Units of calls admitted in the last minutes whose outcome can still refund them (a failed
    # call is not billed): included in `used`, billed once settled (docs/billing.md).
    provisional: int = 0
    by_endpoint: dict[str, int]
    daily: list[DayUsage]


class RollupResult(Schema):
    job: str
    hashes: int
    rows: int
    cleared: int
    settled: int = 0  # requests served while Redis was away, settled by request id
    skipped: bool = False  # `rollup-usage-tick`: the interval had not passed yet


class TopAccount(Schema):
    account_id: str
    email: str
    plan: str
    used: int


class TopAccounts(Schema):
    period_start: datetime
    source: Literal["live", "rollup"]  # live counters, or the roll-up while Redis is away
    data: list[TopAccount]
