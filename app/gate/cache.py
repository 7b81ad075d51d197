"""The per-instance cache of what a key resolves to (`KeyContext`).

The cache makes a warm key cost zero Postgres queries. It is never trusted blindly: every entry
carries the account's and plan's policy versions, and the gate script compares them with the
versions published in Redis on every request, so a revocation, suspension or plan change is seen on
the very next request on every instance, whatever the TTL. The TTL only bounds staleness while
Redis itself is unreachable (fail-open mode).

Known keys live in an LRU+TTL map (`cachetools.TTLCache`). Hashes known to be no usable key (never
issued, or revoked) live in a second, separate one, so a flood of random keys only churns that
second map and can never evict the entries that make real keys cheap.

A negative entry cannot hide a key created a moment ago: a key is 256 random bits and only its
hash is stored, so nobody can present a key (and make its hash "known unknown") before it exists.
Revocation is final, so a revoked key never becomes usable again either. As a belt-and-braces
measure, a key inserted through this process drops its hash from the negative map anyway
(`KeyResolver`, on the `ApiKey` insert).
"""

from __future__ import annotations

from cachetools import TTLCache

from app.accounts.context import KeyContext

_MISSING = object()


class KeyCache:
    """Key hash → `KeyContext` (LRU+TTL), and apart from it the hashes known to be unusable."""

    def __init__(
        self, ttl_seconds: float, max_entries: int = 10_000, max_unknown: int = 10_000
    ) -> None:
        self.ttl = ttl_seconds
        lifetime = max(ttl_seconds, 0.001)  # TTL 0 stores nothing (see `put`)
        self.known: TTLCache[str, KeyContext] = TTLCache(maxsize=max_entries, ttl=lifetime)
        self.unknown: TTLCache[str, bool] = TTLCache(maxsize=max_unknown, ttl=lifetime)

    def get(self, key_hash: str) -> KeyContext | None | object:
        """The cached context, `None` for a known-unusable key, or `MISSING`."""
        context = self.known.get(key_hash)
        if context is not None:
            return context
        return None if key_hash in self.unknown else _MISSING

    def put(self, key_hash: str, context: KeyContext | None) -> None:
        """Remember a load: a usable key in the LRU map, an unknown or revoked one apart."""
        if self.ttl <= 0:
            return
        if context is None or context.key_status == "revoked":
            self.known.pop(key_hash, None)
            self.unknown[key_hash] = True
        else:
            self.unknown.pop(key_hash, None)
            self.known[key_hash] = context

    def forget_unknown(self, key_hash: str) -> None:
        """Drop a negative entry (a key with this hash was just created)."""
        self.unknown.pop(key_hash, None)

    def drop(self, key_hash: str) -> None:
        self.known.pop(key_hash, None)
        self.unknown.pop(key_hash, None)

    def clear(self) -> None:
        self.known.clear()
        self.unknown.clear()


MISSING = _MISSING
