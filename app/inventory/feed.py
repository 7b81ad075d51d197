"""Change-feed cursors: an opaque, tamper-evident position (`txid`, `id`) in the change log.

Same construction as the catalog's list cursors (app/catalog/cursor.py): base64url JSON plus a
truncated HMAC-SHA256 under a key derived for this purpose only
(`settings.signing_key(b"agentmall/inventory-cursor/v1")`), so a catalog cursor is not a feed
cursor and nobody outside can mint or edit one: anything else is a 400 `invalid_cursor`. The
position is the last change served; the next page starts strictly after it.
"""

from __future__ import annotations

from app.core.config import Settings
from app.core.errors import InvalidCursor
from app.core.sealed import BrokenSeal, seal, unseal

CURSOR_CONTEXT = b"agentmall/inventory-cursor/v1"
MAX_CURSOR_LENGTH = 256
MAX_POSITION = 2**63 - 1  # both parts are PostgreSQL bigints
START = (0, 0)  # before the first change


class FeedCursors:
    """Encodes and verifies feed positions under one secret MAC key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedCursors:
        return cls(settings.signing_key(CURSOR_CONTEXT))

    def encode(self, position: tuple[int, int]) -> str:
        """The cursor continuing after `position`."""
        return seal(self._key, {"t": position[0], "i": position[1]})

    def decode(self, cursor: str | None) -> tuple[int, int]:
        """The position to continue after (the start for no cursor); `InvalidCursor` otherwise."""
        if cursor is None:
            return START
        try:
            data = unseal(self._key, cursor, max_length=MAX_CURSOR_LENGTH)
        except BrokenSeal as exc:
            raise InvalidCursor() from exc
        if set(data) != {"t", "i"}:
            raise InvalidCursor()
        txid, change_id = data["t"], data["i"]
        for part in (txid, change_id):
            if type(part) is not int or not 0 <= part <= MAX_POSITION:
                raise InvalidCursor()
        return txid, change_id
