"""Fixtures of the search tests: `client` answers an unhandled error with the app's real 500 (as a
server would), `backend` runs one gate adapter (search does not depend on it; tests/gate runs
both), and `sqlite_client` is an app on a fresh SQLite file with a pro key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.catalog.search.support import sqlite_app


@pytest.fixture(params=["redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """Search does not depend on the gate's Redis adapter (tests/gate runs both): one is enough."""
    return str(request.param)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """The conftest client, except that an unhandled error comes back as the app's 500 response
    (as a real server would send it) instead of being raised into the test."""
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000), raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def sqlite_client(tmp_path: Path) -> AsyncIterator[tuple[AsyncClient, str]]:
    """An app on a fresh SQLite file (in-process Redis), with a pro key."""
    async with sqlite_app(tmp_path / "search.db", "search") as (_, client, key):
        yield client, key
