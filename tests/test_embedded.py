"""The newcomer's default: a SQLite file and the in-process Redis, with the sample catalog.

The same gate script runs here as on Redis and Upstash (fakeredis executes the Lua).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_KEY, ROOT


async def test_embedded_default_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/agentmall.db"
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=url,
        ADMIN_API_KEY=ADMIN_KEY,
        REDIS_KEY_PREFIX=f"emb:{tmp_path.name}:",
        LOAD_SAMPLE_CATALOG=True,
    )
    assert settings.redis_backend == "embedded"
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app), base_url="http://local") as client,
    ):
        signup = await client.post("/v1/signup", json={"email": "new@example.com"})
        assert signup.status_code == 201
        headers = {"X-API-Key": signup.json()["api_key"]}
        page = await client.get("/v1/products", params={"limit": 100}, headers=headers)
        assert page.status_code == 200 and len(page.json()["data"]) == 100
        assert page.headers["x-quota-remaining"] == "999"
        sku = page.json()["data"][0]["sku"]
        detail = await client.get(f"/v1/products/{sku}", headers=headers)
        assert detail.status_code == 200 and "stock" in detail.json()
        await client.put(
            "/v1/admin/plans/free",
            json={"included_calls": 3},
            headers={"X-API-Key": ADMIN_KEY},
        )
        statuses = [
            (await client.get("/v1/products", headers=headers)).status_code for _ in range(2)
        ]
        assert statuses == [200, 429]
        assert (await client.get("/v1/health/ready")).json()["redis"] == "embedded"
