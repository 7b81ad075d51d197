"""Opaque, tamper-evident search cursors.

A cursor carries where the previous page ended (its last product's sort key: score and SKU,
price and SKU, creation time and SKU, or SKU), a fingerprint of the search it belongs to (query,
filters and sort), and what the first page decided (a corrected spelling, a relaxed match, the
total count), under a MAC keyed with a server secret (`Settings.cursor_key`). An edited, truncated
or foreign cursor, or one replayed with another query, filters or sort, is a 400, never a silently
wrong page. Even a correctly-MACed cursor must carry values of the right type (a SKU a path
parameter would accept, a finite score, a whole price, a timestamp) before they reach SQL.

The score is the exact value the database computed (a `float4` from PostgreSQL is carried as the
double that represents it exactly), so the keyset `(score, sku)` never repeats or skips a product.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.catalog.schemas import Sku
from app.core.errors import InvalidCursor
from app.core.sealed import BrokenSeal, seal, unseal

MAX_CURSOR_LENGTH = 512
MAX_TOTAL = 1_000_000_000
_SKU = TypeAdapter(Sku)
SORTS = ("relevance", "price_asc", "price_desc", "newest", "sku")


def fingerprint(*parts: Any) -> str:
    """A short digest of the search a cursor belongs to."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Position:
    """Where a page ended, and what the first page of the search decided."""

    key: tuple[Any, ...]
    mode: int = 0  # bit 1: spelling corrected; 2: relaxed to any word; 4: word conditions dropped
    total: int = 0
    capped: bool = False


def _valid_sku(value: object) -> str:
    """`value` if it is a SKU a path parameter would accept, else `InvalidCursor`."""
    try:
        return _SKU.validate_python(value, strict=True)
    except ValidationError as exc:
        raise InvalidCursor() from exc


def _valid_int(value: object, high: int) -> int:
    if type(value) is not int or not 0 <= value <= high:
        raise InvalidCursor()
    return value


def _valid_key(sort: str, key: object) -> tuple[Any, ...]:
    """The sort key of `sort`, checked value by value."""
    if not isinstance(key, list) or len(key) != (1 if sort == "sku" else 2):
        raise InvalidCursor()
    sku = _valid_sku(key[-1])
    if sort == "sku":
        return (sku,)
    first = key[0]
    if sort == "relevance":
        if type(first) not in (int, float) or not math.isfinite(first):
            raise InvalidCursor()
        return (float(first), sku)
    if sort in ("price_asc", "price_desc"):
        return (_valid_int(first, 2_000_000_000), sku)
    if not isinstance(first, str) or len(first) > 40:
        raise InvalidCursor()
    try:
        return (datetime.fromisoformat(first), sku)
    except ValueError as exc:
        raise InvalidCursor() from exc


class CursorCodec:
    """Encodes and verifies search cursors under one secret MAC key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, position: Position, binding: str) -> str:
        """A cursor continuing at `position`, bound to the search fingerprint `binding`."""
        key = [v.isoformat() if isinstance(v, datetime) else v for v in position.key]
        data = {"k": key, "f": binding, "m": position.mode, "t": position.total}
        if position.capped:
            data["c"] = 1
        return seal(self._key, data)

    def decode(self, cursor: str, binding: str, sort: str | Callable[[int], str]) -> Position:
        """The position to continue from; `InvalidCursor` for anything but our own cursor.

        `sort` may depend on how the first page read the query: a function of the mode."""
        try:
            data = unseal(self._key, cursor, max_length=MAX_CURSOR_LENGTH)
        except BrokenSeal as exc:
            raise InvalidCursor() from exc
        mode = _valid_int(data.get("m"), 7)
        if not isinstance(sort, str):
            sort = sort(mode)
        if data.get("f") != binding or sort not in SORTS:
            raise InvalidCursor()
        return Position(
            key=_valid_key(sort, data.get("k")),
            mode=mode,
            total=_valid_int(data.get("t"), MAX_TOTAL),
            capped=data.get("c") == 1,
        )
