"""API key material: generated with 256 bits of randomness, stored only as SHA-256 hex."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "am_live_"
_TOKEN_CHARS = 43  # secrets.token_urlsafe(32): 32 random bytes, base64url without padding
KEY_LENGTH = len(KEY_PREFIX) + _TOKEN_CHARS
DISPLAY_PREFIX_LENGTH = 12  # "am_live_" + 4 characters: enough to tell keys apart in a list
_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def generate_key() -> str:
    """A new plaintext key (shown once, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    """Cheap shape check so garbage never reaches the cache or the database."""
    return (
        len(key) == KEY_LENGTH
        and key.startswith(KEY_PREFIX)
        and set(key[len(KEY_PREFIX) :]) <= _ALPHABET
    )


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
