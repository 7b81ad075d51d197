"""A suspended key that was rotated before its suspension: once its grace ends it no longer works,
but its suspension stands until the founder lifts it (the account mints no keys meanwhile), and
the founder can still lift it."""

from __future__ import annotations

import asyncpg
from httpx import AsyncClient

from tests.conftest import database_url
from tests.support.factories import ADMIN, key_headers, make_account


async def _expire(key_id: str) -> None:
    conn = await asyncpg.connect(database_url())
    await conn.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", key_id
    )
    await conn.close()


async def _rotated_then_suspended(client: AsyncClient) -> tuple[str, str, str]:
    """(account id, old key id, new key): the old key rotated (1 h grace), then suspended."""
    account_id, key = await make_account(client)
    old_id = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"][0]["id"]
    rotated = await client.post(
        f"/v1/keys/{old_id}/rotate", json={"grace_seconds": 3600}, headers=key_headers(key)
    )
    assert rotated.status_code == 201, rotated.text
    new_key = rotated.json()["api_key"]
    suspended = await client.post(f"/v1/admin/keys/{old_id}/suspend", headers=ADMIN)
    assert suspended.status_code == 200, suspended.text
    minted = await client.post("/v1/keys", headers=key_headers(new_key))
    assert minted.status_code == 403  # while the suspended key is in its grace
    return account_id, old_id, new_key


async def test_the_founder_can_lift_a_suspension_after_the_key_expired(
    client: AsyncClient,
) -> None:
    _, old_id, _ = await _rotated_then_suspended(client)
    await _expire(old_id)
    lifted = await client.post(f"/v1/admin/keys/{old_id}/unsuspend", headers=ADMIN)
    # was: 404 key_not_found, while billing kept refusing the account for that key
    assert lifted.status_code == 200, lifted.text


async def test_a_suspension_does_not_evaporate_when_the_key_expires(client: AsyncClient) -> None:
    _, old_id, new_key = await _rotated_then_suspended(client)
    await _expire(old_id)
    minted = await client.post("/v1/keys", headers=key_headers(new_key))
    # was: 201, the account minted keys again although the founder never lifted the suspension
    assert minted.status_code == 403, minted.text
