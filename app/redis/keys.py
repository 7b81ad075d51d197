"""Every Redis key AgentMall uses, named in one place under one prefix.

The prefix keeps environments apart (see `Settings.REDIS_KEY_PREFIX`); everything below it is
owned by one domain: policy versions (accounts), the minute window and the keys' last use (gate),
usage hashes and their dirty marks (usage), product versions (catalog).
"""

from __future__ import annotations

from datetime import datetime


class RedisKeys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.dirty = f"{prefix}dirty"
        self.rollup_due = f"{prefix}rollup:ran"  # set for USAGE_ROLLUP_INTERVAL_SECONDS by a run
        # one hash: lower-cased SKU -> its version (app/catalog/versions.py), read by the gate
        self.product_versions = f"{prefix}pv"

    def account_version(self, account_id: str) -> str:
        return f"{self.prefix}v:a:{account_id}"

    def plan_version(self, plan_code: str) -> str:
        return f"{self.prefix}v:p:{plan_code}"

    def window(self, account_id: str) -> str:
        """Per-second buckets of the minute window (a hash; `rl:` held the older sorted set)."""
        return f"{self.prefix}w:{account_id}"

    def invalid_keys(self, client: str) -> str:
        """Failed key lookups of one client address (or IPv6 /64) in the current minute."""
        return f"{self.prefix}badkey:{client}"

    def usage(self, account_id: str, period_start: datetime) -> str:
        return f"{self.usage_prefix(account_id)}{int(period_start.timestamp())}"

    def usage_prefix(self, account_id: str) -> str:
        """The gate script appends the period start (epoch seconds) it picked by Redis's clock."""
        return f"{self.prefix}u:{account_id}:"

    def ids(self, account_id: str) -> str:
        """Recently admitted request ids (and tombstones), for degraded-mode reconciliation."""
        return f"{self.prefix}ids:{account_id}"

    def last_used(self, account_id: str) -> str:
        """When each key of the account was last admitted (a hash: key id -> epoch seconds)."""
        return f"{self.prefix}lu:{account_id}"

    @property
    def top_prefix(self) -> str:
        """The live top-usage board of a calendar month: this plus the month start (seconds)."""
        return f"{self.prefix}top:"

    def top(self, month_start_s: int) -> str:
        return f"{self.top_prefix}{month_start_s}"

    def parse_usage(self, key: str) -> tuple[str, int]:
        """(account id, period start epoch seconds) from a usage hash key."""
        account_id, period = key[len(self.prefix) + 2 :].rsplit(":", 1)
        return account_id, int(period)
