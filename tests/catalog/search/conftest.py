"""Fixtures of the search tests: `client` answers an unhandled error with the app's real 500 (as a
server would), `backend` runs one gate adapter (search does not depend on it; tests/gate runs
both), and `sqlite_client` is an app on a fresh SQLite file with a pro key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.support.factories import ADMIN, random_client_ip, set_plan


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
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/search.db",
        ADMIN_API_KEY=ADMIN_KEY,
        REDIS_KEY_PREFIX=f"search:{tmp_path.name}:",
        LOAD_SAMPLE_CATALOG=False,
        TRUSTED_PROXIES="127.0.0.1",
    )
    app = create_app(settings)
    transport = ASGITransport(app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://local") as c,
    ):
        await set_plan(c, "pro", requests_per_minute=100_000)
        signup = await c.post(
            "/v1/signup",
            json={"email": "sqlite-search@example.com"},
            headers={"X-Forwarded-For": random_client_ip()},
        )
        assert signup.status_code == 201, signup.text
        account = signup.json()
        plan = await c.put(
            f"/v1/admin/accounts/{account['account_id']}/plan", json={"plan": "pro"}, headers=ADMIN
        )
        assert plan.status_code == 200
        yield c, account["api_key"]
