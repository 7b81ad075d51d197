"""MCP over real HTTP: the suite's app served by uvicorn on a loopback port, driven by the SDK's
own client (`mcp.Client` over `streamable_http_client`).

uvicorn runs as a task on the test's event loop (with the app's lifespan), so the app's clients
(PostgreSQL pool, Redis) serve the MCP requests and the test's own ASGI calls (sign-up, admin)
from one loop. `RoundRobin` is an HTTP transport for the SDK client that sends each request to
the next of several servers: two app instances, no affinity.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.main import create_app

MODERN, LEGACY = "auto", "legacy"  # `Client(mode=...)`: 2026-07-28 sessionless, or initialize


@dataclass
class Served:
    """One app on a loopback port, with what its `/mcp` answered."""

    port: int
    requests: Counter[str] = field(default_factory=Counter)  # "POST /mcp" -> count
    session_ids: list[str] = field(default_factory=list)  # any Mcp-Session-Id it handed out
    responses: list[dict[str, str]] = field(default_factory=list)  # the headers of each

    @property
    def last_headers(self) -> dict[str, str]:
        """The headers of the latest metered response (a tool call: the gate's headers)."""
        metered = [h for h in self.responses if "x-quota-limit" in h or "retry-after" in h]
        return metered[-1] if metered else {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def _recording(app: ASGIApp, served: Served) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        served.requests[f"{scope['method']} {scope['path']}"] += 1

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                served.responses.append(headers)
                if "mcp-session-id" in headers:
                    served.session_ids.append(headers["mcp-session-id"])
            await send(message)

        await app(scope, receive, watch)

    return wrapped


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[Served]:
    """uvicorn serving `app` (lifespan on) on a free loopback port, on this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    served = Served(port=sock.getsockname()[1])
    config = uvicorn.Config(
        _recording(app, served), lifespan="on", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                await asyncio.sleep(0.01)
        yield served
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[Served]:
    async with serve(app) as s:
        yield s


@pytest.fixture
async def second_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Another instance of the API (another serverless function), same settings and stores."""
    other = create_app(app.state.services.settings)
    yield other
    await other.state.services.close()


@pytest.fixture
async def served_pair(app: FastAPI, second_app: FastAPI) -> AsyncIterator[list[Served]]:
    async with serve(app) as first, serve(second_app) as second:
        yield [first, second]


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next port in turn (the Host header stays as the client set it)."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = itertools.cycle(ports)
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(port=next(self._ports))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def mcp_client(
    url: str,
    *,
    key: str | None = None,
    mode: str = MODERN,
    headers: dict[str, str] | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> AsyncIterator[Client]:
    """The SDK's client over Streamable HTTP; `key` goes in `X-API-Key` unless `headers` say."""
    sent = dict(headers or {})
    if key is not None:
        sent.setdefault("X-API-Key", key)
    kwargs: dict[str, Any] = {"headers": sent, "timeout": httpx2.Timeout(30.0)}
    if transport is not None:
        kwargs["transport"] = transport
    async with httpx2.AsyncClient(**kwargs) as http:
        transport_cm = streamable_http_client(url, http_client=http)
        async with Client(transport_cm, mode=mode) as client:
            yield client
