"""Key changes under concurrency, on real PostgreSQL: each counts the account's live keys under
the account's row lock, so concurrent creates never pass the limit and concurrent revokes never
leave an account without a working key."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.accounts import service as accounts
from app.core.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_KEY, database_url
from tests.support.factories import key_headers, make_account


@pytest.fixture
def backend() -> str:
    """The races are PostgreSQL's: one Redis adapter is enough."""
    return "redis"


async def live_keys(account_id: str) -> int:
    conn = await asyncpg.connect(database_url())
    try:
        total = await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE account_id = $1 AND status <> 'revoked' "
            "AND (expires_at IS NULL OR expires_at > now())",
            account_id,
        )
    finally:
        await conn.close()
    return int(total)


async def test_thirty_concurrent_creates_leave_exactly_the_limit(client: AsyncClient) -> None:
    account_id, key = await make_account(client)
    responses = await asyncio.gather(
        *(client.post("/v1/keys", headers=key_headers(key)) for _ in range(30))
    )
    outcomes = Counter(
        (r.status_code, r.json().get("error")) for r in responses if r.status_code != 201
    )
    created = sum(r.status_code == 201 for r in responses)
    assert created == accounts.MAX_LIVE_KEYS - 1  # the sign-up key is the tenth
    assert outcomes == {(409, "key_limit_reached"): 30 - created}
    assert await live_keys(account_id) == accounts.MAX_LIVE_KEYS
    listed = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"]
    assert len(listed) == accounts.MAX_LIVE_KEYS


async def test_concurrent_revokes_of_an_accounts_two_keys_leave_one(client: AsyncClient) -> None:
    """Each of ten accounts revokes its two keys at once, each with the other key: exactly one
    revoke per account succeeds, and the key left keeps working."""
    pairs = []
    for _ in range(10):
        account_id, first = await make_account(client)
        second = (await client.post("/v1/keys", headers=key_headers(first))).json()
        first_id = (await client.get("/v1/keys", headers=key_headers(first))).json()["data"][0]
        pairs.append((account_id, first, first_id["id"], second["api_key"], second["id"]))
    responses = await asyncio.gather(
        *(
            request
            for _, first, first_id, second, second_id in pairs
            for request in (
                client.delete(f"/v1/keys/{first_id}", headers=key_headers(second)),
                client.delete(f"/v1/keys/{second_id}", headers=key_headers(first)),
            )
        )
    )
    for index, (account_id, first, _, second, _) in enumerate(pairs):
        pair = responses[2 * index : 2 * index + 2]
        assert [r.status_code for r in pair].count(200) == 1, [r.text for r in pair]
        # the loser either waited for the lock (409 last_key) or came after the commit, with a
        # key that was revoked by then (401)
        (loser,) = (r for r in pair if r.status_code != 200)
        assert (loser.status_code, loser.json()["error"]) in {
            (409, "last_key"),
            (401, "invalid_api_key"),
        }
        assert await live_keys(account_id) == 1
        works = [
            (await client.get("/v1/account", headers=key_headers(k))).status_code
            for k in (first, second)
        ]
        assert sorted(works) == [200, 401]


async def test_concurrent_rotations_and_creates_respect_the_limit(
    app: FastAPI, client: AsyncClient
) -> None:
    """Rotations (each adds a key while the old one counts during its grace) racing creates
    still never pass the limit."""
    account_id, key = await make_account(client)
    for _ in range(7):
        assert (await client.post("/v1/keys", headers=key_headers(key))).status_code == 201
    listed = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"]
    responses = await asyncio.gather(
        *(client.post(f"/v1/keys/{k['id']}/rotate", headers=key_headers(key)) for k in listed[1:]),
        *(client.post("/v1/keys", headers=key_headers(key)) for _ in range(5)),
    )
    assert sum(r.status_code == 201 for r in responses) == 2
    assert {r.json()["error"] for r in responses if r.status_code != 201} == {"key_limit_reached"}
    assert await live_keys(account_id) == accounts.MAX_LIVE_KEYS


async def test_on_sqlite_the_writer_lock_serialises_key_changes(tmp_path: Path) -> None:
    """The embedded default has no row locks (FOR UPDATE is dropped): the account "lock" there
    is a write that takes SQLite's one writer lock first, so creates and revokes still queue."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/keys.db",
        ADMIN_API_KEY=ADMIN_KEY,
        REDIS_KEY_PREFIX=f"keys:{tmp_path.name}:",
        LOAD_SAMPLE_CATALOG=False,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app), base_url="http://local") as client,
    ):
        signup = await client.post("/v1/signup", json={"email": "race@example.com"})
        key = key_headers(signup.json()["api_key"])
        responses = await asyncio.gather(*(client.post("/v1/keys", headers=key) for _ in range(30)))
        assert sum(r.status_code == 201 for r in responses) == accounts.MAX_LIVE_KEYS - 1
        listed = (await client.get("/v1/keys", headers=key)).json()["data"]
        assert len(listed) == accounts.MAX_LIVE_KEYS
        keys = [(listed[0]["id"], signup.json()["api_key"])] + [
            (r.json()["id"], r.json()["api_key"]) for r in responses if r.status_code == 201
        ]
        # every key revoked at once, each by the next one: exactly one must survive
        await asyncio.gather(
            *(
                client.delete(f"/v1/keys/{key_id}", headers=key_headers(keys[(i + 1) % 10][1]))
                for i, (key_id, _) in enumerate(keys)
            )
        )
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        (live,) = conn.execute("SELECT count(*) FROM api_keys WHERE status <> 'revoked'").fetchone()
    assert live == 1
