"""This instance's recently read products: each one's JSON, kept under the version Redis gave it.

An entry is served only when the gate's own Redis command says the product's version is still the
one the entry was read under (app/catalog/versions.py), so a hit costs no database statement and
can never be stale. Bounded by entries and by bytes (`PRODUCT_CACHE_MAX_ENTRIES`,
`PRODUCT_CACHE_MAX_BYTES`); the least recently used entries leave first.
"""

from collections import OrderedDict
from threading import Lock

ENTRY_OVERHEAD = 200  # bytes an entry costs beyond its JSON (key, tuple, dict slot), roughly


class ProductCache:
    """An LRU of product JSON keyed by the SKU as requested, each with its version."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._lock = Lock()  # the app is async, but a thread (a sync test, a tool) may share it

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def size(sku: str, body: bytes) -> int:
        return len(body) + len(sku) + ENTRY_OVERHEAD

    def get(self, sku: str, version: str) -> bytes | None:
        """The product's JSON if it was read under `version`; else None (a miss)."""
        with self._lock:
            entry = self._entries.get(sku)
            if entry is None or entry[0] != version:
                self.misses += 1
                return None
            self._entries.move_to_end(sku)
            self.hits += 1
            return entry[1]

    def put(self, sku: str, version: str, body: bytes) -> None:
        """Keep `body` under `version` (replacing an older entry), then evict to the bounds."""
        size = self.size(sku, body)
        with self._lock:
            old = self._entries.pop(sku, None)
            if old is not None:
                self.bytes -= self.size(sku, old[1])
            if self.max_entries <= 0 or size > self.max_bytes:
                return  # caching disabled, or one product larger than the whole cache
            self._entries[sku] = (version, body)
            self.bytes += size
            while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
                evicted, (_, evicted_body) = self._entries.popitem(last=False)
                self.bytes -= self.size(evicted, evicted_body)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0
