"""The per-instance connection pool: warm requests open no connection, a connection the server
closed while the instance sat idle is replaced before use, read-only routes skip BEGIN/COMMIT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import database_url
from tests.support.factories import ADMIN, key_headers

pytestmark = pytest.mark.parametrize("backend", ["redis"], indirect=True)

PRODUCT = {
    "sku": "POOL-1",
    "name": "Pool Float",
    "description": "",
    "category": "outdoor",
    "price_cents": 1999,
    "currency": "usd",
    "attributes": {},
}


@pytest.fixture
async def pool_app(settings: Settings, clean_database: None) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"DB_POOL_IDLE_CHECK_SECONDS": 0.2}))
    yield application
    await application.state.services.close()


@pytest.fixture
async def pool_client(pool_app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=pool_app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def _key(client: AsyncClient) -> str:
    put = await client.put("/v1/admin/products", json={"products": [PRODUCT]}, headers=ADMIN)
    assert put.status_code == 200, put.text
    signup = await client.post("/v1/signup", json={"email": "pool@example.com"})
    assert signup.status_code == 201, signup.text
    return str(signup.json()["api_key"])


async def _terminate_other_backends() -> int:
    conn = await asyncpg.connect(database_url())
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
        )
    finally:
        await conn.close()


async def test_warm_requests_open_no_connection(
    pool_app: FastAPI, pool_client: AsyncClient
) -> None:
    key = await _key(pool_client)
    db = pool_app.state.services.db
    for _ in range(2):  # warm: the key is cached, a connection is pooled
        assert (await pool_client.get("/v1/products/POOL-1", headers=key_headers(key))).is_success
    before = db.connects.count
    for _ in range(5):
        response = await pool_client.get("/v1/products/POOL-1", headers=key_headers(key))
        assert response.status_code == 200
    assert db.connects.count == before


async def test_a_connection_closed_while_idle_never_fails_a_request(
    pool_app: FastAPI, pool_client: AsyncClient
) -> None:
    key = await _key(pool_client)
    db = pool_app.state.services.db
    assert (await pool_client.get("/v1/products/POOL-1", headers=key_headers(key))).is_success
    assert await _terminate_other_backends() >= 1  # the server drops the pooled connection
    await asyncio.sleep(0.3)  # idle past DB_POOL_IDLE_CHECK_SECONDS
    before = db.connects.count
    for _ in range(3):  # a listing: a product read would be served from the instance's copy
        response = await pool_client.get("/v1/products?limit=1", headers=key_headers(key))
        assert response.status_code == 200, response.text
    assert db.connects.count == before + 1  # checked, found dead, replaced once


async def _state(pid: int) -> str:
    conn = await asyncpg.connect(database_url())
    try:
        return str(await conn.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid))
    finally:
        await conn.close()


async def test_read_only_units_send_no_begin(pool_app: FastAPI) -> None:
    """Between two statements of a read-only unit the connection is idle, not idle in a
    transaction: no BEGIN was sent, so no COMMIT is owed either."""
    db = pool_app.state.services.db
    async with db.unit(read_only=True) as session:
        pid = int(await session.scalar(sa.text("SELECT pg_backend_pid()")) or 0)
        assert await _state(pid) == "idle"
    async with db.unit() as session:
        pid = int(await session.scalar(sa.text("SELECT pg_backend_pid()")) or 0)
        assert await _state(pid) == "idle in transaction"


async def test_pool_size_zero_keeps_no_connection(settings: Settings, clean_database: None) -> None:
    """`DB_POOL_SIZE=0` means no pool (a connection per unit, closed after it), as documented:
    SQLAlchemy's own `pool_size=0` would mean the opposite, a pool without a limit."""
    application = create_app(settings.model_copy(update={"DB_POOL_SIZE": 0}))
    db = application.state.services.db
    try:
        for _ in range(3):
            async with db.unit(read_only=True) as session:
                await session.execute(sa.text("SELECT 1"))
        assert db.connects.count == 3
        assert type(db.engine.pool).__name__ == "NullPool"
    finally:
        await application.state.services.close()


async def test_sqlite_reuses_its_connection(backend: str, tmp_path: Path) -> None:
    """The embedded SQLite default pools its connections too (opening one costs a thread)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/pool.db"
    )
    application = create_app(settings)
    db = application.state.services.db
    try:
        for _ in range(3):
            async with db.unit() as session:
                await session.execute(sa.text("SELECT 1"))
        assert db.connects.count == 1
    finally:
        await application.state.services.close()
