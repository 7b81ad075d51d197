"""Webhook fixtures: a real HTTP receiver on 127.0.0.1 (allowed through `WEBHOOK_ALLOW_HOSTS`),
a stub DNS the SSRF guard asks instead of the system resolver, and helpers to register endpoints
and queue events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from app.core.db import Database
from app.main import create_app
from app.webhooks.outbox import enqueue
from app.webhooks.router import get_resolver
from tests.conftest import make_settings
from tests.support.factories import key_headers

RECEIVER_NAME = "receiver.test"  # resolved only by the stub DNS, to 127.0.0.1
PUBLIC_IP = "93.184.215.14"  # a public address: allowed, never connected to by any test


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP/1.1 server on 127.0.0.1 that records requests and answers `statuses` in turn
    (then `default_status`); with `hang`, it reads the request and never answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.delay = 0.0
        self.hang = False
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                if line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            if self.hang:
                await self._release.wait()
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.statuses.pop(0) if self.statuses else self.default_status
            head = f"HTTP/1.1 {status} Status\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + b"ok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class StubDNS:
    """The resolver the SSRF guard uses in tests: `answers[host]`, else NXDOMAIN."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {
            RECEIVER_NAME: ["127.0.0.1"],
            "hooks.example.com": [PUBLIC_IP],
        }
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"{host}: name does not resolve")
        return list(self.answers[host])


@pytest.fixture
def backend() -> str:
    """Webhooks do not depend on the Redis adapter: one backend is enough here."""
    return "redis"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def dns() -> StubDNS:
    return StubDNS()


@pytest.fixture
def settings(redis_prefix: str, raw_redis: aioredis.Redis, receiver: Receiver) -> Settings:
    allow = f"127.0.0.1:{receiver.port},{RECEIVER_NAME}:{receiver.port}"
    return make_settings("redis", redis_prefix, None, WEBHOOK_ALLOW_HOSTS=allow)


@pytest.fixture
async def app(settings: Settings, clean_database: None, dns: StubDNS) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    application.dependency_overrides[get_resolver] = lambda: dns
    yield application
    await application.state.services.close()


@pytest.fixture
def db(app: FastAPI) -> Database:
    database: Database = app.state.services.db
    return database


async def register(
    client: AsyncClient,
    key: str,
    url: str,
    event_types: tuple[str, ...] = ("inventory.updated",),
) -> dict[str, Any]:
    """Register an endpoint (must succeed); returns the 201 body (with the secret)."""
    body = {"url": url, "event_types": list(event_types)}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def queue(
    db: Database, event_type: str, data: dict[str, Any], account_id: str | None = None
) -> int:
    async with db.unit() as session:
        return await enqueue(session, event_type=event_type, data=data, account_id=account_id)
