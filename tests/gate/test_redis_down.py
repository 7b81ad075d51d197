"""Redis unreachable: RATE_LIMIT_FAILURE_MODE decides, and a hung Redis gives up in bounded time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.main import create_app
from tests.conftest import UPSTASH_TOKEN, database_url, make_settings
from tests.support.factories import key_headers, make_account, make_products
from tests.support.upstash_bridge import UpstashBridge


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers: a hung Redis."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _call_with(app: FastAPI, key: str, path: str = "/v1/products") -> tuple[int, dict, float]:
    async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as client:
        started = time.perf_counter()
        response = await client.get(path, headers=key_headers(key))
        elapsed = time.perf_counter() - started
    await app.state.services.close()
    return response.status_code, {**response.headers, "body": response.json()}, elapsed


def _broken(kind: str, mode: str, prefix: str, port: int, bridge_url: str) -> FastAPI:
    extra = {"RATE_LIMIT_FAILURE_MODE": mode, "REDIS_TIMEOUT_MS": 200}
    if kind == "refused":
        settings = make_settings("redis", prefix, REDIS_URL="redis://127.0.0.1:1/0", **extra)
    elif kind == "hung-redis":
        settings = make_settings("redis", prefix, REDIS_URL=f"redis://127.0.0.1:{port}/0", **extra)
    else:
        settings = make_settings("upstash", prefix, bridge_url, **extra)
    return create_app(settings)


@pytest.mark.parametrize("kind", ["refused", "hung-redis", "hung-upstash"])
async def test_closed_mode_refuses_with_503(
    client: AsyncClient, redis_prefix: str, silent_server: int, kind: str
) -> None:
    _, key = await make_account(client)
    with UpstashBridge(token=UPSTASH_TOKEN, delay_seconds=5) as hung:
        app = _broken(kind, "closed", redis_prefix, silent_server, hung.url)
        status, headers, elapsed = await _call_with(app, key)
    assert status == 503
    assert headers["body"]["error"] == "rate_limiter_unavailable"
    # the bridge hangs 5 s: well under that proves the request did not wait for it (the margin
    # absorbs a loaded CI machine, where 1.5 s was once exceeded by a request that did not hang)
    assert elapsed < 3.0, f"a dead Redis held the request for {elapsed:.2f}s"


@pytest.mark.parametrize("kind", ["refused", "hung-redis", "hung-upstash"])
async def test_open_mode_serves_degraded_and_still_meters(
    client: AsyncClient, redis_prefix: str, silent_server: int, kind: str
) -> None:
    (sku,) = await make_products(client, 1)
    account_id, key = await make_account(client)
    with UpstashBridge(token=UPSTASH_TOKEN, delay_seconds=5) as hung:
        app = _broken(kind, "open", redis_prefix, silent_server, hung.url)
        status, headers, elapsed = await _call_with(app, key, f"/v1/products/{sku}")
    assert status == 200
    assert headers["x-ratelimit-degraded"] == "1"
    assert headers["x-quota-limit"] == "1000"
    assert elapsed < 3.0  # the bridge hangs 5 s (see above)
    conn = await asyncpg.connect(database_url())
    rows = await conn.fetch(
        "SELECT endpoint, units FROM degraded_calls WHERE account_id = $1", account_id
    )
    await conn.close()
    assert [tuple(r) for r in rows] == [("products.get", 1)]  # nothing billed is lost
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 1 and usage["by_endpoint"] == {"products.get": 1}


async def test_open_mode_still_refuses_suspended_keys(
    client: AsyncClient, redis_prefix: str, silent_server: int, bridge: UpstashBridge
) -> None:
    _, key = await make_account(client)
    keys = (await client.get("/v1/keys", headers=key_headers(key))).json()["data"]
    from tests.support.factories import ADMIN

    await client.post(f"/v1/admin/keys/{keys[0]['id']}/suspend", headers=ADMIN)
    app = _broken("refused", "open", redis_prefix, silent_server, bridge.url)
    status, headers, _ = await _call_with(app, key)
    assert status == 403 and headers["body"]["error"] == "key_suspended"


async def test_readiness_names_the_failing_dependency(
    redis_prefix: str, clean_database: None, silent_server: int, bridge: UpstashBridge
) -> None:
    app = _broken("refused", "open", redis_prefix, silent_server, bridge.url)
    async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as client:
        assert (await client.get("/v1/health")).status_code == 200
        response = await client.get("/v1/health/ready")
    await app.state.services.close()
    assert response.status_code == 503
    assert response.json()["unavailable"] == ["redis"]
