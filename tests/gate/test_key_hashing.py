"""A key is its whole secret: every character after the prefix counts, and what is stored is the
SHA-256 hex of the plaintext — pinned here to values computed outside the code under test."""

from __future__ import annotations

import hashlib

import asyncpg
import pytest
from httpx import AsyncClient

from app.core.apikeys import DISPLAY_PREFIX_LENGTH, KEY_LENGTH, KEY_PREFIX, hash_key, looks_like_key
from tests.conftest import database_url
from tests.support.factories import make_account, random_client_ip

# A key of the real shape and its SHA-256, computed once with coreutils (`printf %s KEY |
# sha256sum`), so a changed digest (another algorithm, a salt, a truncation) cannot go unseen.
PINNED_KEY = "am_live_AgentMallPinnedTestKey0123456789abcdefghijk"
PINNED_SHA256 = "44035814686d172a66cee8b18e74c92e006c03bcc5f969f1e88f70f3a0aed472"

DATA_PLANE = "/v1/products"
CONTROL_PLANE = "/v1/account"

# Where the forged key first differs from the real one: just past the part shown in key lists,
# in the middle, and only in the very last character (catches a hash of any proper prefix).
DIFFERS_AT = [DISPLAY_PREFIX_LENGTH, (DISPLAY_PREFIX_LENGTH + KEY_LENGTH) // 2, KEY_LENGTH - 1]


def forged(real: str, position: int) -> str:
    """`real` with the character at `position` changed: same length, prefix and alphabet."""
    replacement = "A" if real[position] != "A" else "B"
    return real[:position] + replacement + real[position + 1 :]


def sent_from(key: str) -> dict[str, str]:
    """Each request from its own address, so the invalid-key limiter never answers 429 instead."""
    return {"X-API-Key": key, "X-Forwarded-For": random_client_ip()}


def test_hash_key_is_the_sha256_hex_of_the_whole_key() -> None:
    assert len(PINNED_KEY) == KEY_LENGTH and looks_like_key(PINNED_KEY)
    assert hash_key(PINNED_KEY) == PINNED_SHA256
    assert hash_key(PINNED_KEY) == hashlib.sha256(PINNED_KEY.encode()).hexdigest()
    for position in DIFFERS_AT:
        other = forged(PINNED_KEY, position)
        assert hash_key(other) == hashlib.sha256(other.encode()).hexdigest() != PINNED_SHA256


async def test_the_stored_hash_is_the_sha256_of_the_returned_key(client: AsyncClient) -> None:
    account_id, key = await make_account(client)
    conn = await asyncpg.connect(database_url())
    try:
        stored = await conn.fetchval(
            "SELECT key_hash FROM api_keys WHERE account_id = $1", account_id
        )
        plaintext_rows = await conn.fetchval(
            "SELECT count(*) FROM api_keys k WHERE strpos(k::text, $1) > 0", key
        )
    finally:
        await conn.close()
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert plaintext_rows == 0  # the plaintext itself is nowhere in the table


@pytest.mark.parametrize("path", [DATA_PLANE, CONTROL_PLANE], ids=["gate", "control-plane"])
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cached"])
async def test_a_key_sharing_a_real_keys_prefix_is_refused(
    client: AsyncClient, path: str, warm: bool
) -> None:
    """Cold: resolved in PostgreSQL; cached: the real key was just used, so a lookup by a
    colliding hash would be answered from the in-process cache."""
    _, real = await make_account(client)
    assert real.startswith(KEY_PREFIX) and len(real) == KEY_LENGTH
    if warm:
        assert (await client.get(path, headers=sent_from(real))).status_code == 200
    for position in DIFFERS_AT:
        impostor = forged(real, position)
        assert looks_like_key(impostor) and impostor[:position] == real[:position]
        response = await client.get(path, headers=sent_from(impostor))
        assert response.status_code == 401, (position, response.text)
        assert response.json()["error"] == "invalid_api_key"
    # the real key is untouched by the attempts
    assert (await client.get(path, headers=sent_from(real))).status_code == 200
