"""Sealed tokens: a small JSON object, base64url-encoded, with a truncated HMAC-SHA256 under a
purpose-specific secret key. Used for list cursors, change-feed cursors and one-click links.

Nobody without the key can mint or edit one; the MAC is checked (in constant time) before the
payload is parsed, so a forged token never reaches JSON parsing, let alone SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

MAC_CHARS = 24  # 144 bits of HMAC-SHA256, base64url


class BrokenSeal(ValueError):
    """The token is malformed, too long, or its MAC does not match."""


def _mac(key: bytes, payload: bytes) -> str:
    digest = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:MAC_CHARS]


def seal(key: bytes, data: dict[str, Any]) -> str:
    """`data` as a token only the holder of `key` can produce."""
    payload = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _mac(key, payload)


def unseal(key: bytes, token: str, *, max_length: int) -> dict[str, Any]:
    """The object sealed in `token` under `key`; `BrokenSeal` for anything else."""
    if len(token) > max_length or token.count(".") != 1:
        raise BrokenSeal("malformed")
    body, mac = token.split(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BrokenSeal("malformed") from exc
    if not hmac.compare_digest(mac.encode(), _mac(key, payload).encode()):
        raise BrokenSeal("forged")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BrokenSeal("malformed") from exc
    if not isinstance(data, dict):
        raise BrokenSeal("malformed")
    return data
