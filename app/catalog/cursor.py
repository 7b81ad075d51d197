"""Opaque, tamper-evident list cursors.

A cursor carries the last SKU of a page and a fingerprint of the query it belongs to, and a MAC
over both. An edited, truncated or foreign cursor (or one replayed with other filters) is a 400,
never a silently wrong page. The MAC is keyed with a server secret (`Settings.cursor_key`), so
nobody outside can mint a cursor; a cursor grants nothing a caller could not list anyway. Even a
correctly-MACed cursor must carry a valid SKU (the path parameter's rules) before it reaches SQL.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import TypeAdapter, ValidationError

from app.catalog.schemas import Sku
from app.core.errors import InvalidCursor
from app.core.sealed import BrokenSeal, seal, unseal

MAX_CURSOR_LENGTH = 256
_SKU = TypeAdapter(Sku)


def _fingerprint(*filters: str | None) -> str:
    """A short digest of the query filters the cursor belongs to."""
    return hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:12]


def _valid_sku(value: object) -> str:
    """`value` if it is a SKU a path parameter would accept, else `InvalidCursor`."""
    try:
        return _SKU.validate_python(value, strict=True)
    except ValidationError as exc:
        raise InvalidCursor() from exc


class CursorCodec:
    """Encodes and verifies list cursors under one secret MAC key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, after_sku: str, *filters: str | None) -> str:
        """A cursor continuing after `after_sku`, bound to `filters`."""
        return seal(self._key, {"a": after_sku, "f": _fingerprint(*filters)})

    def decode(self, cursor: str, *filters: str | None) -> str:
        """The SKU to continue after; `InvalidCursor` for anything that is not our own cursor."""
        try:
            data = unseal(self._key, cursor, max_length=MAX_CURSOR_LENGTH)
        except BrokenSeal as exc:
            raise InvalidCursor() from exc
        if data.get("f") != _fingerprint(*filters):
            raise InvalidCursor()
        return _valid_sku(data.get("a"))
