"""A 2xx is only sent once the change is committed (and published to Redis)."""

from __future__ import annotations

import gc
import json
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.apikeys import KEY_PREFIX
from tests.conftest import database_url
from tests.support.factories import key_headers


async def test_signup_is_committed_before_the_response_starts(app: FastAPI) -> None:
    body = json.dumps({"email": "ordered@example.com"}).encode()
    seen: dict[str, Any] = {}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            conn = await asyncpg.connect(database_url())
            seen["accounts"] = await conn.fetchval(
                "SELECT count(*) FROM accounts WHERE email = 'ordered@example.com'"
            )
            await conn.close()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/signup",
        "raw_path": b"/v1/signup",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("198.51.100.9", 1234),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    assert seen == {"status": 201, "accounts": 1}


async def _open_transactions() -> list[str]:
    """Connections to the test database left inside a transaction."""
    conn = await asyncpg.connect(database_url())
    try:
        rows = await conn.fetch(
            "SELECT left(query, 80) AS query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state LIKE 'idle in transaction%'"
        )
    finally:
        await conn.close()
    return [row["query"] for row in rows]


async def test_a_refused_request_releases_its_connection_before_the_response(
    app: FastAPI, client: AsyncClient
) -> None:
    """A request the gate refuses after a query (an unknown key: 401) has rolled back, closed
    its session and freed its connection slot by the time the client has the response — not
    later, whenever the garbage collector finalises an abandoned generator."""
    db = app.state.services.db
    free = db._permits._value
    gc.disable()  # what used to close the session: an abandoned generator's finaliser
    try:
        response = await client.get("/v1/products", headers=key_headers(KEY_PREFIX + "x" * 43))
        assert response.status_code == 401
        assert db._permits._value == free
        assert await _open_transactions() == []
    finally:
        gc.enable()


async def test_a_unit_of_work_that_raises_is_closed_at_once(app: FastAPI) -> None:
    db = app.state.services.db
    free = db._permits._value
    gc.disable()
    try:
        with pytest.raises(RuntimeError):
            async with db.unit() as session:
                await session.execute(sa.text("SELECT 1"))
                raise RuntimeError("boom")
        assert db._permits._value == free
        assert await _open_transactions() == []
    finally:
        gc.enable()


@pytest.mark.parametrize("read_only", [True, False])
async def test_every_unit_gives_its_connection_back_whether_it_used_one_or_not(
    app: FastAPI, read_only: bool
) -> None:
    """A unit that never touched the database is dropped without a close (nothing to release);
    one that did, read-only, committed, or raising, is closed: its connection goes back to the
    pool and it leaves no transaction open."""
    db = app.state.services.db
    pool = db.engine.sync_engine.pool
    free = db._permits._value

    async with db.unit(read_only=read_only) as session:
        assert not session.in_transaction()
    async with db.unit(read_only=read_only) as session:
        await session.execute(sa.text("SELECT 1"))
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0
    with pytest.raises(RuntimeError):
        async with db.unit(read_only=read_only) as session:
            await session.execute(sa.text("SELECT 1"))
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        async with db.unit(read_only=read_only) as session:
            raise RuntimeError("before any statement")
    assert pool.checkedout() == 0
    assert db._permits._value == free
    assert await _open_transactions() == []
