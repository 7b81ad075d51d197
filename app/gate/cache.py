"""The per-instance cache of what a key resolves to (`KeyContext`).

The cache makes a warm key cost zero Postgres queries. It is never trusted blindly: every entry
carries the account's and plan's policy versions, and the gate script compares them with the
versions published in Redis on every request, so a revocation, suspension or plan change is seen on
the very next request on every instance, whatever the TTL. The TTL only bounds staleness while
Redis itself is unreachable (fail-open mode).
"""

from __future__ import annotations

import time

from app.accounts.context import KeyContext

_MISSING = object()


class KeyCache:
    """A bounded TTL map from key hash to `KeyContext` (or `None`: a hash known not to exist)."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, KeyContext | None]] = {}

    def get(self, key_hash: str) -> KeyContext | None | object:
        """The cached context, `None` for a known-unknown key, or `MISSING`."""
        hit = self._entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return _MISSING
        return hit[1]

    def put(self, key_hash: str, context: KeyContext | None) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))  # oldest insertion first
        self._entries.pop(key_hash, None)
        self._entries[key_hash] = (time.monotonic() + self.ttl, context)

    def drop(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()


MISSING = _MISSING
