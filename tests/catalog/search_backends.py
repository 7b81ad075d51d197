"""The judged search suites' machinery: the app on PostgreSQL and SQLite, with the sample catalog.

Shared by `test_search_relevance.py` (issue 8) and `test_search_agents.py` (issue 18). Each suite
asks for the `backends` fixture (`tests/catalog/conftest.py`, module-scoped), which starts both
apps through `running_backends`: a PostgreSQL database of the module's own
(`<TEST_PG_DATABASE>_<module>`, e.g. `agentmall_test_search_relevance`, recreated and migrated with
Alembic at the start, which the other tests' TRUNCATE never touches) and a temporary SQLite file,
each loaded with the 3,015 sample products once per module. A `Backend` runs a `Case` through the
HTTP API with a real key and keeps its `Outcome` (the first page, every page when the case walks,
the hard checks' errors) for the module's other tests.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.catalog.importer import load_sample_if_empty
from app.core.config import Settings
from app.main import create_app
from tests.catalog.relevance_cases import (
    MEAN_NDCG_FLOOR,
    NDCG_DEPTH,
    Case,
    Outcome,
    catalog,
    matches_filters,
)
from tests.conftest import ADMIN_KEY, CRON_SECRET, PG_ADMIN_URL, REDIS_URL, ROOT
from tests.support.factories import random_client_ip
from tests.support.settings import local_settings

BACKENDS = ("postgresql", "sqlite")
SEARCH = "/v1/products/search"
ADMIN = {"X-API-Key": ADMIN_KEY}
PAGE_LIMIT = 20  # the judged first page (nDCG@10 and the top-5 comparison use its head)
WALK_LIMIT = 100  # page size when walking every page
MAX_PAGES = 12  # relevance is capped at 1,000 results: 10 pages of 100


@dataclass
class Backend:
    """One app on one database, with a key of its own."""

    name: str
    client: AsyncClient
    headers: dict[str, str]
    outcomes: dict[str, Outcome]

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(SEARCH, json=body, headers=self.headers)
        assert response.status_code == 200, (
            f"{self.name} {body}: {response.status_code} {response.text}"
        )
        return dict(response.json())

    async def walk(self, case: Case, limit: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every page of `case` at `limit` per page; also returns the last page's pagination."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES * (WALK_LIMIT // limit + 1)):
            body = await self.search(case.body(limit, cursor))
            found += body["products"]
            pagination = body["pagination"]
            cursor = pagination["cursor"]
            if not pagination["has_next_page"]:
                return found, pagination
            assert cursor, f"{self.name} {case.id}: has_next_page without a cursor"
        raise AssertionError(f"{self.name} {case.id}: more pages than the cap allows")

    async def outcome(self, case: Case) -> Outcome:
        """The case's answer on this backend, computed once per module."""
        if case.id not in self.outcomes:
            self.outcomes[case.id] = await self._run(case)
        return self.outcomes[case.id]

    async def _run(self, case: Case) -> Outcome:
        body = await self.search(case.body(PAGE_LIMIT))
        pagination = body["pagination"]
        outcome = Outcome(
            backend=self.name,
            case=case,
            page=body["products"],
            messages=body.get("messages") or [],
            total_count=pagination["total_count"],
            interpreted=body.get("interpreted"),
        )
        if case.walk:
            everything, last = await self.walk(case, WALK_LIMIT)
            outcome.everything = everything
            skus = [p["sku"] for p in everything]
            if len(skus) != len(set(skus)):
                outcome.errors.append("a product came back twice while paging")
            if not last["total_count_capped"] and len(everything) != last["total_count"]:
                outcome.errors.append(
                    f"paging returned {len(everything)} products, total_count says "
                    f"{last['total_count']}"
                )
            head = [p["sku"] for p in everything[:PAGE_LIMIT]]
            if head != [p["sku"] for p in outcome.page]:
                outcome.errors.append("the first page differs between page sizes 20 and 100")
        skus = [p["sku"] for p in outcome.page]
        if len(skus) != len(set(skus)):
            outcome.errors.append("a product appears twice on the first page")
        if case.filters:
            wrong = [p["sku"] for p in outcome.results if not matches_filters(case.filters, p)]
            if wrong:
                outcome.errors.append(f"{len(wrong)} result(s) violate the filters: {wrong[:5]}")
        for check in case.checks:
            problem = check(outcome)
            if problem:
                outcome.errors.append(problem)
        return outcome


async def _postgres_url(database: str) -> str:
    """A fresh database of its own, migrated to head (never truncated by the other tests)."""
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL)
    except OSError as exc:  # pragma: no cover - the environment, not the code
        pytest.exit(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}", returncode=3)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = Settings(DATABASE_URL=url).DATABASE_URL
    config.attributes["configure_logger"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    return url


async def _start(stack: AsyncExitStack, name: str, settings: Settings) -> Backend:
    """Start the app, load the sample catalog, and sign up a key with room for every request."""
    app: FastAPI = create_app(settings)
    await stack.enter_async_context(app.router.lifespan_context(app))
    loaded = await load_sample_if_empty(app.state.services.db)
    assert loaded == len(catalog()), f"{name}: loaded {loaded} products"
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    client = await stack.enter_async_context(
        AsyncClient(transport=transport, base_url="http://test")
    )
    signup = await client.post(
        "/v1/signup",
        json={"email": f"rel-{uuid.uuid4().hex[:10]}@example.com"},
        headers={"X-Forwarded-For": random_client_ip()},
    )
    assert signup.status_code == 201, signup.text
    account = signup.json()
    for path, payload in (
        ("/v1/admin/plans/enterprise", {"requests_per_minute": 100_000}),
        (f"/v1/admin/accounts/{account['account_id']}/plan", {"plan": "enterprise"}),
    ):
        response = await client.put(path, json=payload, headers=ADMIN)
        assert response.status_code == 200, response.text
    return Backend(name, client, {"X-API-Key": account["api_key"]}, {})


@asynccontextmanager
async def running_backends(database: str, sqlite_dir: Path) -> AsyncIterator[dict[str, Backend]]:
    """Both apps, loaded: PostgreSQL on the fresh database `database`, SQLite in `sqlite_dir`.

    Their Redis keys share one random prefix, deleted on the way out."""
    prefix = f"rel:{uuid.uuid4().hex[:12]}:"
    common: dict[str, Any] = {
        "prefix": prefix,
        "redis_url": REDIS_URL,
        "admin_key": ADMIN_KEY,
        "cron_secret": CRON_SECRET,
    }
    async with AsyncExitStack() as stack:
        postgres = await _start(
            stack,
            "postgresql",
            local_settings("redis", database_url=await _postgres_url(database), **common),
        )
        sqlite = await _start(
            stack,
            "sqlite",
            local_settings(
                "embedded",
                database_url=f"sqlite+aiosqlite:///{sqlite_dir / 'search.db'}",
                **common,
            ),
        )
        yield {"postgresql": postgres, "sqlite": sqlite}
    redis = aioredis.from_url(REDIS_URL, decode_responses=True, protocol=2)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


# --- reporting -----------------------------------------------------------------------------------


def describe(outcome: Outcome, count: int = 5) -> str:
    """The first `count` results with their grades (and scores), one per line."""
    rows = [
        f"      {i + 1}. [{outcome.case.judge(p)}] {p['sku']} {p['name']}"
        + (f"  (score {p['score']:.6g})" if isinstance(p.get("score"), int | float) else "")
        for i, p in enumerate(outcome.page[:count])
    ]
    return "\n".join(rows) or "      (no results)"


def ndcg_report(backend: str, outcomes: Sequence[Outcome]) -> tuple[float, str]:
    """The mean nDCG@10 over `outcomes` and the per-case report (failing cases in detail)."""
    scores = {o.case.id: o.ndcg() for o in outcomes}
    mean = sum(scores.values()) / len(scores)
    lines = [f"\n=== {backend}: nDCG@{NDCG_DEPTH} per case (grades of the first 10) ==="]
    for o in outcomes:
        flag = "  " if scores[o.case.id] >= MEAN_NDCG_FLOOR and not o.errors else "!!"
        lines.append(
            f"{flag} {scores[o.case.id]:.3f}  {o.case.id:<30} q={o.case.query!r} "
            f"total={o.total_count} grades={o.grades()}"
            + (f" messages={[m.get('code') for m in o.messages]}" if o.messages else "")
        )
        if scores[o.case.id] < MEAN_NDCG_FLOOR or o.errors:
            lines.append(describe(o))
            lines += [f"      ! {e}" for e in o.errors]
    lines.append(f"=== {backend}: mean nDCG@{NDCG_DEPTH} = {mean:.3f} over {len(scores)} cases ===")
    return mean, "\n".join(lines)
