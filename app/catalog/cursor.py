"""Opaque, tamper-evident list cursors.

A cursor carries the last SKU of a page and a fingerprint of the query it belongs to, and a MAC
over both. An edited, truncated or foreign cursor (or one replayed with other filters) is a 400,
never a silently wrong page. The MAC is not a secret-keyed authorisation: a cursor grants nothing a
caller could not list anyway; it only makes tampering detectable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from app.core.errors import InvalidCursor

_KEY = b"agentmall/catalog-cursor/v1"
MAX_CURSOR_LENGTH = 256


def _fingerprint(*filters: str | None) -> str:
    return hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:12]


def _mac(payload: bytes) -> str:
    return hmac.new(_KEY, payload, hashlib.sha256).hexdigest()[:16]


def encode(after_sku: str, *filters: str | None) -> str:
    payload = json.dumps({"a": after_sku, "f": _fingerprint(*filters)}, separators=(",", ":"))
    raw = payload.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + _mac(raw)


def decode(cursor: str, *filters: str | None) -> str:
    """The SKU to continue after; `InvalidCursor` for anything that is not our own cursor."""
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise InvalidCursor()
    body, mac = cursor.split(".")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not hmac.compare_digest(mac, _mac(raw)) or not isinstance(data, dict):
        raise InvalidCursor()
    after = data.get("a")
    if not isinstance(after, str) or data.get("f") != _fingerprint(*filters):
        raise InvalidCursor()
    return after
