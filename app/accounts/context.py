"""What an API key resolves to: everything the gate needs, loaded from Postgres and cached."""

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
    # A rotated key's end of grace. It only ever moves earlier (rotation never extends it), so a
    # cached value that says "expired" is never stale: the gate refuses on it without any I/O.
    expires_at: datetime | None = None
    account_status: str = "active"  # active | suspended (every key of the account stops)

    def expired(self, now: datetime) -> bool:
        """Past the grace period of a rotation: the key no longer works (401)."""
        return has_expired(self.expires_at, now)

    @property
    def suspended(self) -> bool:
        """The key, or its whole account, is suspended (the gate answers 403 `key_suspended`)."""
        return self.key_status == "suspended" or self.account_status == "suspended"


def has_expired(expires_at: datetime | None, now: datetime) -> bool:
    """True once `expires_at` has come (grace 0 means "now": stopped at once)."""
    return expires_at is not None and expires_at <= now
