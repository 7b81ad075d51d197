"""A 2xx is only sent once the change is committed (and published to Redis)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from fastapi import FastAPI

from tests.conftest import database_url


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
