"""HTTP helpers shared by the search tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.core.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.support.factories import ADMIN, key_headers, random_client_ip, set_plan

SEARCH = "/v1/products/search"
Body = dict[str, Any]


async def upsert(client: AsyncClient, items: list[Body]) -> None:
    """Admin upsert, in batches of the endpoint's maximum (1,000)."""
    for start in range(0, len(items), 1000):
        response = await client.put(
            "/v1/admin/products", json={"products": items[start : start + 1000]}, headers=ADMIN
        )
        assert response.status_code == 200, response.text


async def post(client: AsyncClient, key: str, body: Any) -> Response:
    """POST a search; the body is encoded here so a lone surrogate travels as its JSON escape."""
    headers = key_headers(key) | {"Content-Type": "application/json"}
    return await client.post(SEARCH, content=json.dumps(body), headers=headers)


async def search(client: AsyncClient, key: str, body: Body) -> Body:
    response = await post(client, key, body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def skus_of(products: list[Body]) -> list[str]:
    return [p["sku"] for p in products]


@asynccontextmanager
async def sqlite_app(database: Path, name: str) -> AsyncIterator[tuple[FastAPI, AsyncClient, str]]:
    """An app on a fresh SQLite file (in-process Redis) and a pro key of its own."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        ADMIN_API_KEY=ADMIN_KEY,
        REDIS_KEY_PREFIX=f"{name}:{database.parent.name}:",
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
            json={"email": f"sqlite-{name}@example.com"},
            headers={"X-Forwarded-For": random_client_ip()},
        )
        assert signup.status_code == 201, signup.text
        account = signup.json()
        plan = await c.put(
            f"/v1/admin/accounts/{account['account_id']}/plan", json={"plan": "pro"}, headers=ADMIN
        )
        assert plan.status_code == 200, plan.text
        yield app, c, account["api_key"]
