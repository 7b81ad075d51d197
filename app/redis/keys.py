"""Every Redis key AgentMall uses, named in one place under one prefix.

The prefix keeps environments apart (see `Settings.REDIS_KEY_PREFIX`); everything below it is
owned by one domain: policy versions (accounts), the minute window (gate), usage hashes and their
dirty marks (usage).
"""

from __future__ import annotations

from datetime import datetime


class RedisKeys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.dirty = f"{prefix}dirty"

    def account_version(self, account_id: str) -> str:
        return f"{self.prefix}v:a:{account_id}"

    def plan_version(self, plan_code: str) -> str:
        return f"{self.prefix}v:p:{plan_code}"

    def window(self, account_id: str) -> str:
        return f"{self.prefix}rl:{account_id}"

    def usage(self, account_id: str, period_start: datetime) -> str:
        return f"{self.prefix}u:{account_id}:{int(period_start.timestamp())}"

    def parse_usage(self, key: str) -> tuple[str, int]:
        """(account id, period start epoch seconds) from a usage hash key."""
        account_id, period = key[len(self.prefix) + 2 :].rsplit(":", 1)
        return account_id, int(period)
