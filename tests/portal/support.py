"""A browser-like client for the portal's pages: cookies kept, forms filled with the page's CSRF
token, the sign-in link read from the log (no SMTP_URL in these tests: the link is logged)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import database_url
from tests.support.factories import random_client_ip

BASE = "https://api.agentmall.test"  # PUBLIC_BASE_URL of the test settings (Secure cookies)
LINK = re.compile(r"https://api\.agentmall\.test/portal/auth/([A-Za-z0-9_-]+)")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def email(prefix: str = "dev") -> str:
    """A fresh address (no account yet)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def sql(query: str, *args: object) -> None:
    """One statement on the test database (to expire a link or a session, mark an account)."""
    conn = await asyncpg.connect(database_url())
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


@asynccontextmanager
async def browser(app: FastAPI, *, ip: str | None = None) -> AsyncIterator[AsyncClient]:
    """One browser: its own cookie jar and client address."""
    transport = ASGITransport(app=app, client=("203.0.113.9", 50000))
    headers = {"X-Forwarded-For": ip or random_client_ip()}
    async with AsyncClient(transport=transport, base_url=BASE, headers=headers) as client:
        yield client


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def submit(client: AsyncClient, page_url: str, action: str, **fields: str) -> httpx.Response:
    """Load `page_url`, then post `fields` to `action` with that page's CSRF token."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf": csrf_of(page.text), **fields})


def logged_link(caplog: pytest.LogCaptureFixture, email: str) -> str:
    """The token of the latest sign-in link logged for `email`."""
    lines = [r.getMessage() for r in caplog.records if r.name == "agentmall.portal"]
    tokens = [LINK.search(line) for line in lines if f" {email.lower()} " in line]
    found = [t.group(1) for t in tokens if t]
    assert found, f"no sign-in link logged for {email}: {lines}"
    return found[-1]


async def request_link(client: AsyncClient, caplog: pytest.LogCaptureFixture, email: str) -> str:
    response = await submit(client, "/portal/login", "/portal/login", email=email)
    assert response.status_code == 200 and "Check your inbox" in response.text, response.text
    return logged_link(caplog, email)


async def sign_in(
    client: AsyncClient, caplog: pytest.LogCaptureFixture, email: str
) -> httpx.Response:
    """The whole sign-in: ask for a link, open it, confirm. Returns the confirmation's answer."""
    token = await request_link(client, caplog, email)
    return await submit(client, f"/portal/auth/{token}", f"/portal/auth/{token}")


def new_key(page: str) -> str | None:
    found = re.search(r'<code id="new-key">([^<]+)</code>', page)
    return html.unescape(found.group(1)) if found else None
