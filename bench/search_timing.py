"""Timing search through the app: the query classes, the measured run, SQL capture and EXPLAIN.

Every request goes through the real app (`create_app(settings)`, httpx `ASGITransport`) with a
real API key behind the gate (Redis by URL), sequentially, interleaved in rounds (every variant
runs a chunk per round, order rotated) after an untimed warm-up. Per request: wall time, the SQL
statements the app sent and the time spent in them (SQLAlchemy cursor events on the app's own
engine). The statements of each variant's last timed request are kept for EXPLAIN.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.core.db import _sqlite_pragmas
from app.main import create_app
from tests.support.settings import local_settings

CLIENT_ADDR = ("203.0.113.7", 50000)
PER_MINUTE = 100_000  # PlanUpdate's cap
PER_MONTH = 50_000_000
SEARCH = "/v1/products/search"
MAX_PAGE = 10  # paging variants follow the cursor up to this page, then start again at page 1
ADMIN_KEY = f"bench-admin-{uuid.uuid4().hex}"
CRON_SECRET = f"bench-cron-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Variant:
    """One request shape of a query class."""

    cls: str
    label: str
    body: dict[str, Any] | None = None  # POST /v1/products/search
    path: str | None = None  # a GET instead (baselines)
    paged: bool = False  # time pages 2..MAX_PAGE, following pagination.cursor


def _q(query: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"pagination": {"limit": 20}}
    if query is not None:
        body["query"] = query
    return body | extra


FILTER_LAPTOPS = {
    "categories": ["laptops"],
    "price": {"min": 80_000, "max": 200_000},
    "in_stock": True,
    "attributes": [{"name": "ram_gb", "op": "gte", "value": 16}],
}
FILTER_HEADPHONES = {
    "categories": ["headphones"],
    "price": {"min": 5_000, "max": 20_000},
    "in_stock": True,
    "attributes": [{"name": "color", "value": "black"}],
}
FILTER_SHOES = {
    "categories": ["Running Shoes"],
    "price": {"min": 8_000, "max": 16_000},
    "in_stock": True,
    "attributes": [{"name": "size", "value": 10}],
}

# Agent-style queries: constraints written in words (price, size, specs, politeness) that the
# generated catalog (bench/search_catalog.py, from app/catalog/sample.py's makers) can satisfy,
# and two it cannot. Each is sent as the bare `query`, with no filters.
AGENT_QUERIES = (
    "cheap wireless earbuds",  # headphones type=earbuds, wireless; from ~$70
    "gaming laptop under $1500",  # the "Talon Gaming" / "Hunter G" lines (RTX GPU), $990 up
    "laptop with 32 GB RAM under 2000 dollars",  # ram_gb=32 (names say "32GB"), $880-1960
    "black headphones between $50 and $150",  # color=black, "(Black)" in the name
    "running shoes size 10",  # running-shoes size=10 ("US 10" in the name)
    "women's trail running shoes size 8",  # gender=women, surface=trail, size=8
    "do you have any mechanical keyboards?",  # "mechanical keyboard" in half the descriptions
    "27 inch 144hz monitor",  # screen_in=27, refresh_hz=144 (27" … 144Hz in the name)
    "4k oled monitor under $1000",  # resolution 3840x2160 (never "4k"), panel=OLED, $720 up
    "premium espresso machine",  # coffee gear type=espresso machine, $390-1370; no "premium"
    "ethiopian light roast coffee beans",  # origin=Ethiopia, roast=light, kind=beans
    "full-frame mirrorless camera under $2500",  # sensor=full-frame, type=mirrorless
    "4 season tent for 2 people",  # tent seasons=4, capacity_people=2 ("2P 4-Season Tent")
    "building set for an 8 year old",  # toys type=building set, age_min<=8 ("ages 8+")
    "usb-c charger",  # no charger anywhere; usb-c only in keyboards' and monitors' text
    "robot vacuum under $300",  # no such product in any category
)

BASELINES = (
    Variant("health", "GET /v1/health", path="/v1/health"),
    Variant("get_sku", "GET /v1/products/LAP-0000042", path="/v1/products/LAP-0000042"),
)
CLASSES: tuple[Variant, ...] = (
    Variant("one_word", "shoes", _q("shoes")),
    Variant("one_word", "laptop", _q("laptop")),
    Variant("one_word", "headphones", _q("headphones")),
    Variant("one_word", "coffee", _q("coffee")),
    Variant(
        "multi_word",
        "wireless noise cancelling headphones",
        _q("wireless noise cancelling headphones"),
    ),
    Variant("multi_word", "trail running shoes", _q("trail running shoes")),
    Variant("multi_word", "stainless steel chef's knife", _q("stainless steel chef's knife")),
    Variant("prefix", "headph", _q("headph")),
    Variant("prefix", "lapt", _q("lapt")),
    Variant("prefix", "espres", _q("espres")),
    Variant("typo", "hedphones", _q("hedphones")),
    Variant("typo", "labtop", _q("labtop")),
    Variant("typo", "keybaord", _q("keybaord")),
    Variant("filtered", "laptops ram>=16 $800-2000 in stock", _q(filters=FILTER_LAPTOPS)),
    Variant(
        "filtered",
        "'wireless' headphones black $50-200 in stock",
        _q("wireless", filters=FILTER_HEADPHONES),
    ),
    Variant("filtered", "Running Shoes size=10 $80-160 in stock", _q(filters=FILTER_SHOES)),
    Variant("faceted", "headphones +facets", _q("headphones", facets=True)),
    Variant("faceted", "shoes +facets", _q("shoes", facets=True)),
    Variant(
        "faceted",
        "laptops (no query) +facets",
        _q(filters={"categories": ["laptops"]}, facets=True),
    ),
    Variant("sorted", "shoes price_asc", _q("shoes", sort="price_asc")),
    Variant("sorted", "laptop price_desc", _q("laptop", sort="price_desc")),
    Variant("sorted", "headphones price_asc", _q("headphones", sort="price_asc")),
    Variant("page_2plus", "shoes relevance, pages 2-10", _q("shoes"), paged=True),
    Variant(
        "page_2plus", "laptop price_asc, pages 2-10", _q("laptop", sort="price_asc"), paged=True
    ),
    Variant("exact_sku", "lap-0000042 (case-insensitive SKU)", _q("lap-0000042")),
    *(Variant("agent", query, _q(query)) for query in AGENT_QUERIES),
)
CLASS_ORDER = (
    "one_word",
    "multi_word",
    "prefix",
    "typo",
    "filtered",
    "faceted",
    "sorted",
    "page_2plus",
    "exact_sku",
    "agent",
)


@dataclass
class Series:
    """What one variant measured."""

    variant: Variant
    latencies_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    statements: list[tuple[str, Any]] = field(default_factory=list)  # last timed request
    sample: dict[str, Any] = field(default_factory=dict)  # from the first (warm-up) answer
    anomalies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # non-200 answers
    cursor: str | None = None
    page: int = 1
    truncated: bool = False  # stopped at the time budget


class SqlTap:
    """Statements and their time on the app's engine, for the request in flight."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.seconds = 0.0
        self._started: list[float] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.statements, self.seconds, self._started = [], 0.0, []

    def _before(self, _c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        self.statements.append((statement, params))
        self._started.append(time.perf_counter())

    def _after(self, *_: Any) -> None:
        if self._started:
            self.seconds += time.perf_counter() - self._started.pop()


@dataclass
class Target:
    """One app on one catalog (a PostgreSQL database or a SQLite file)."""

    backend: str  # postgresql | sqlite
    size: int
    database_url: str
    redis_url: str
    app: FastAPI = field(init=False)
    client: AsyncClient = field(init=False)
    tap: SqlTap = field(init=False)
    prefix: str = field(init=False)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = f"bench:search:{uuid.uuid4().hex[:12]}:"
        settings = local_settings(
            "redis",
            prefix=self.prefix,
            database_url=self.database_url,
            redis_url=self.redis_url,
            admin_key=ADMIN_KEY,
            cron_secret=CRON_SECRET,
            KEY_CACHE_TTL_SECONDS=3600,  # no TTL reload inside the measured run
            SIGNUPS_PER_IP_PER_HOUR=10_000,
        )
        self.app = create_app(settings)
        self.client = AsyncClient(
            transport=ASGITransport(app=self.app, client=CLIENT_ADDR), base_url="http://bench"
        )
        self.tap = SqlTap(self.app.state.services.db.engine.sync_engine)

    async def seed(self) -> None:
        """High plan limits on the free plan and a fresh account; its key goes in `headers`."""
        admin = {"X-API-Key": ADMIN_KEY}
        plan = {"included_calls": PER_MONTH, "requests_per_minute": PER_MINUTE}
        _ok(await self.client.put("/v1/admin/plans/free", json=plan, headers=admin))
        email = f"bench-search-{uuid.uuid4().hex[:10]}@example.com"
        response = _ok(await self.client.post("/v1/signup", json={"email": email}), 201)
        self.headers = {"X-API-Key": str(response.json()["api_key"])}

    async def search_available(self) -> bool:
        response = await self.client.post(SEARCH, json={"query": "x"}, headers=self.headers)
        return response.status_code not in (404, 405)

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.state.services.close()

    async def send(self, variant: Variant, body: dict[str, Any] | None = None) -> Response:
        if variant.path is not None:
            return await self.client.get(variant.path, headers=self.headers)
        return await self.client.post(SEARCH, json=body or variant.body, headers=self.headers)


def _ok(response: Response, status: int = 200) -> Response:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:400]}")
    return response


async def one(target: Target, series: Series, *, timed: bool) -> None:
    """One request of a variant (a paged one: the next page, fetching page 1 untimed first).

    A non-200 answer is recorded as an error of the variant (its time still counts), not raised:
    a run reports every class even when one of them fails."""
    variant = series.variant
    body = variant.body
    if variant.paged:
        if series.cursor is None or series.page >= MAX_PAGE:
            first = await target.send(variant)
            if first.status_code != 200:
                series.errors.append(f"page 1: {first.status_code} {first.text[:200]}")
                return
            series.cursor = first.json()["pagination"]["cursor"]
            series.page = 1
            if series.cursor is None:
                series.errors.append("page 1 has no cursor (too few results)")
                return
        assert body is not None
        body = body | {"pagination": {"limit": 20, "cursor": series.cursor}}
    target.tap.reset()
    start = time.perf_counter()
    response = await target.send(variant, body)
    elapsed = (time.perf_counter() - start) * 1000
    ok = response.status_code == 200
    if not ok:
        series.errors.append(f"{response.status_code} {response.text[:200]}")
        series.cursor = None
    elif variant.paged:
        series.cursor = response.json()["pagination"]["cursor"]
        series.page += 1
    if timed:
        series.latencies_ms.append(elapsed)
        series.sql_ms.append(target.tap.seconds * 1000)
        series.queries.append(len(target.tap.statements))
        series.statements = list(target.tap.statements)
    elif ok and not series.sample:
        series.sample = describe(variant, response)
        series.anomalies = check(variant, series.sample)


def describe(variant: Variant, response: Response) -> dict[str, Any]:
    """The parts of an answer worth reporting (result counts, messages, the first names)."""
    data = response.json()
    if variant.path is not None:
        return {"status": response.status_code}
    products = data.get("products") or []
    pagination = data.get("pagination") or {}
    return {
        "returned": len(products),
        "total_count": pagination.get("total_count"),
        "total_count_capped": pagination.get("total_count_capped"),
        "has_next_page": pagination.get("has_next_page"),
        "messages": [
            {k: m.get(k) for k in ("code", "suggestion") if m.get(k) is not None}
            for m in data.get("messages") or []
        ],
        "top": [p.get("name") for p in products[:3]],
        "prices": [p.get("price_cents") for p in products],
        "facet_groups": sorted((data.get("facets") or {}).keys()),
    }


def check(variant: Variant, sample: dict[str, Any]) -> list[str]:
    """What looks wrong in a variant's first answer (reported; never fails the run)."""
    if variant.path is not None:
        return []
    problems = []
    if not sample["returned"]:
        problems.append("no products returned")
    codes = {m.get("code") for m in sample["messages"]}
    if variant.cls == "typo" and not codes & {"did_you_mean", "corrected_query"}:
        problems.append(f"no did_you_mean/corrected_query message (messages: {sorted(codes)})")
    if variant.cls == "faceted" and not sample["facet_groups"]:
        problems.append("no facets in the answer")
    body = variant.body or {}
    prices = [p for p in sample["prices"] if p is not None]
    if body.get("sort") == "price_asc" and prices != sorted(prices):
        problems.append("price_asc answer not sorted by price")
    if body.get("sort") == "price_desc" and prices != sorted(prices, reverse=True):
        problems.append("price_desc answer not sorted by price")
    return problems


def chunks(total: int, rounds: int) -> Iterator[int]:
    base, extra = divmod(total, rounds)
    for i in range(rounds):
        yield base + (1 if i < extra else 0)


async def measure(
    target: Target,
    variants: list[Variant],
    *,
    requests: int,
    warmup: int,
    rounds: int,
    budget_s: float,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Series]:
    """`requests` timed requests per variant after `warmup` untimed ones, interleaved. A variant
    that has used `budget_s` seconds of timed requests stops early (marked truncated)."""
    all_series = [Series(v) for v in variants]
    for series in all_series:
        for _ in range(warmup):
            await one(target, series, timed=False)
    progress(f"  warm-up done ({warmup} per variant)")
    for i, size in enumerate(chunks(requests, rounds)):
        progress(f"  round {i + 1}/{rounds}")
        shift = i % len(all_series)
        for series in all_series[shift:] + all_series[:shift]:
            gc.collect()
            for _ in range(size):
                if sum(series.latencies_ms) > budget_s * 1000:
                    series.truncated = True
                    break
                await one(target, series, timed=True)
    return all_series


# -- EXPLAIN ------------------------------------------------------------------------------------


async def explain_pg(dsn: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each read statement, run as the app sent it."""
    plans = []
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        for statement, params in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            args = list(params or ())
            try:
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *args)
                plan = "\n".join(r[0] for r in rows)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, TypeError, ValueError) as exc:
                plan = f"(EXPLAIN failed: {exc!r})"
            plans.append(
                {
                    "statement": statement,
                    "params": _show(args),
                    "plan": plan,
                    "execution_ms": _execution_ms(plan),
                }
            )
    finally:
        await conn.close()
    return plans


def explain_sqlite(path: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """EXPLAIN QUERY PLAN of each read statement, and how long it takes run directly."""
    plans = []
    conn = sqlite3.connect(path)
    _sqlite_pragmas(conn, None)  # the app's per-connection functions (am_lower, …)
    try:
        for statement, params in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            args = tuple(params or ())
            try:
                rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", args).fetchall()
                plan = "\n".join(f"{r[0]}|{r[1]}| {r[3]}" for r in rows)
                conn.execute(statement, args).fetchall()  # warm
                start = time.perf_counter()
                conn.execute(statement, args).fetchall()
                ms = (time.perf_counter() - start) * 1000
            except sqlite3.Error as exc:
                plan, ms = f"(EXPLAIN failed: {exc!r})", None
            plans.append(
                {
                    "statement": statement,
                    "params": _show(list(args)),
                    "plan": plan,
                    "execution_ms": ms,
                }
            )
    finally:
        conn.close()
    return plans


def _execution_ms(plan: str) -> float | None:
    for line in plan.splitlines():
        if line.strip().startswith("Execution Time:"):
            return float(line.split(":")[1].split()[0])
    return None


def _show(params: list[Any]) -> list[str]:
    return [repr(p)[:120] for p in params]


async def explain(target: Target, series: list[Series], dsn_or_path: str) -> dict[str, Any]:
    """Plans of every variant's last timed request, keyed by variant label."""
    out: dict[str, Any] = {}
    for s in series:
        if not s.statements or s.variant.path is not None:
            continue
        if target.backend == "postgresql":
            out[s.variant.label] = await explain_pg(dsn_or_path, s.statements)
        else:
            out[s.variant.label] = await asyncio.to_thread(
                explain_sqlite, dsn_or_path, s.statements
            )
    return out
