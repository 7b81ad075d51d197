"""Floor benchmark: the gated product read through the real app against a minimal app doing the
same work, in the same run.

    .venv/bin/python -m bench.floor [--requests N] [--rounds R] [--warmup W] [--settle S] [--json]

Rows, all in one process and one event loop, sequential requests through httpx `ASGITransport`
(as `bench.gate`), interleaved in rounds (every row runs a chunk per round, order rotated) after
an untimed warm-up:

1. **Floor**: a minimal FastAPI app defined here (`floor_app`): one Redis `EVALSHA` (INCR +
   PEXPIRE, loaded once with SCRIPT LOAD, redis.asyncio by URL) and one asyncpg query on a pooled
   connection (`asyncpg.create_pool`, min 1, max 2), returning the product as JSON. It sends the
   same SQL as `app.catalog.repository.get` (product + stock, case-insensitive SKU) with the same
   driver settings as the app (`statement_cache_size=0`: PgBouncer transaction pooling). Its pool
   skips asyncpg's default reset query on release (advisory unlock, CLOSE ALL, UNLISTEN, RESET
   ALL: a round trip the app's SQLAlchemy pool does not pay), so the floor is the work itself.
2. **AgentMall, Redis URL** (the hot read): `GET /v1/products/{sku}` of the same SKU, gated, warm
   key, on `create_app(settings)` with `REDIS_URL`. Once warm it is served from the instance's
   product copies (`app/catalog/cache.py`), validated by the product version the gate's one
   `EVALSHA` returns (`app/catalog/versions.py`).
3. **AgentMall, Upstash REST**: the same on a second app through `UpstashBridge` (real HTTP in
   front of the real Redis): every Redis command is an HTTP request.
4. **AgentMall, no gate**: `GET /bench/products/{sku}` (`bench.apps.ungated_router`, the same
   handler without the gate, so without the copies) on the Redis-URL app: what the session and
   query cost alone.
5. **AgentMall, health**: `GET /v1/health` on the Redis-URL app: middleware and routing only.
6. **AgentMall, bulk of 100, Redis URL**: `POST /v1/products/bulk` with
   `{"skus": [BENCH-0001 … BENCH-0100]}` (the same 100 existing SKUs every time, all found; checked
   once before the warm-up) on the Redis-URL app, with the key of a second account on the paid
   `pro` plan (bulk reads are a paid feature; its limits raised like the free plan's). Seeding
   adds the 99 products after `bench.gate.seed`'s `BENCH-0001` through `PUT /v1/admin/products`.
7. **Bound: the gate command alone**: the very `EVALSHA` a hot read of row 2 sends (captured from
   one of its requests: same script, keys and arguments), sent again through the Redis-URL app's
   own Redis port, without HTTP, routing or any app code. No hot read can take less than the
   health row plus this row; the notes print that bound and what is left for the app's own path
   (hot read − health − this row).
8. **Reference: the gate's reply replayed from memory**: row 2's request on a third app instance
   (`am_memory`, the Redis-URL settings) whose Redis port answers the hot read's gate command
   with the reply Redis gave its first one, without sending it: every line of the app's own path
   runs, no Redis time. What that row costs over health is the app's path alone.

The apps are built only through the public `create_app(settings)`; the database layer is observed,
never changed, so the bench measures whatever `app/core/db.py` does now. Counts per request
(whole-run deltas over the timed requests, divided by their number):

* PostgreSQL statements: `Database.queries` (the app's `before_cursor_execute` counter); the
  floor counts its one query itself.
* New PostgreSQL connections: the pool `connect` event on the app's engine
  (`event.listen(engine.sync_engine, "connect", ...)`); the floor pool's `init` callback.
* Pool checkouts: the pool `checkout` event; the floor's `acquire`.
* BEGIN/COMMIT statements on the wire: an asyncpg query logger (`Connection.add_query_logger`)
  added to every connection as it is opened (installed before the first connection). It sees
  asyncpg's simple-protocol statements, i.e. transaction control, not SQLAlchemy's prepared ones.
  SQLAlchemy's own `begin`/`commit` events are in the JSON (`sa_begins`, `sa_commits`, and
  `sa_autocommit_units` for units on AUTOCOMMIT connections, which send no BEGIN).
* Redis commands and round trips: `bench.probes.RedisWireTap` (redis-py) plus the bridge's
  counters (Upstash). The bridge's counters alone (`UpstashBridge.commands`, `.http_requests`)
  are also kept apart: `upstash_commands`, `upstash_http_requests`.
* Threadpool calls: calls of `anyio.to_thread.run_sync` on the bench thread (FastAPI runs sync
  dependencies, sync endpoints and their response validation there).

Server-side cross-check: `pg_stat_database` (`sessions`, `xact_commit`, `xact_rollback`) for the
bench database, read before and after the timed phase with `--settle` seconds of quiet before each
read (an idle backend flushes its statistics up to 10 s late), against the client-side counts (a
session per connect; a commit per statement outside BEGIN/COMMIT, per COMMIT and per new session;
a rollback per ROLLBACK), and the backends connected to it (`pg_stat_activity`) at both points.
Right after the first read every row serves one untimed request, reported on its own when it
differs from a warm one: pooled connections have then sat idle for `--settle` seconds.

Database: its own, `agentmall_bench_floor` (created, migrated to head with Alembic through
`bench.apps.create_database`, and dropped at the end), so `bench.gate` can run meanwhile.

Goals (issue 21), per warm request (whole-run averages over the timed requests), each printed
with its measured figure and ✓/✗; the run exits 1 when one is missed:

* Hot read (row 2): 0 new PostgreSQL connections; (a) 0.00 PostgreSQL statements
  (`Database.queries`); (b) median ≤ 2× the health row's median (row 5, same app) and ≤ 0.7× the
  floor's median (row 1).
* (c) Upstash row (row 3): exactly 1 Upstash command per request in 1 HTTP request (the bridge's
  `commands` and `http_requests`).
* (d) Bulk row (row 6): exactly 1 Redis command per request (wire tap + bridge) and 0.00
  PostgreSQL statements.

Markdown (for bench/RESULTS.md) or `--json`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
import asyncpg
import fastapi
import redis
import redis.asyncio as aioredis
import sqlalchemy
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, Response
from httpx import AsyncClient
from sqlalchemy import event

from app.core.db import Database
from app.gate.scripts import GATE
from app.main import create_app
from bench import apps
from bench.counts import Tally
from bench.gate import PER_MINUTE, PER_MONTH, SKU, asgi_client, chunks, delete_keys, seed
from bench.probes import RedisWireTap
from bench.report import cli, fmt, p95
from tests.support.upstash_bridge import UpstashBridge

DATABASE = "agentmall_bench_floor"
# Issue 21's goals (see the module docstring): the hot read's median against the health row's and
# the floor's, both measured in the same run.
HEALTH_RATIO_GOAL = 2.0
FLOOR_RATIO_GOAL = 0.7
GOAL_ROW = "am_redis"  # the hot read
UPSTASH_ROW = "am_upstash"
HEALTH_ROW = "am_health"
BULK_ROW = "am_bulk"
GATE_ROW = "gate_alone"
MEMORY_ROW = "am_memory"
BULK_PLAN = "pro"  # a paid plan: `catalog.bulk` is not in the free one
# 100 existing SKUs: `bench.gate.seed` creates BENCH-0001, `seed_bulk` the other 99.
BULK_SKUS = [f"BENCH-{i:04d}" for i in range(1, 101)]
BULK_SIGNUP_ADDRESS = "198.51.100.21"  # X-Forwarded-For (the bench's peer is a trusted proxy)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLOOR_LUA = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
"""
FLOOR_WINDOW_MS = 60_000
# The statement `app.catalog.repository.get` sends: the product and its stock, SKU compared
# case-insensitively, an exact-case match first.
FLOOR_SQL = """
SELECT p.sku, p.name, p.description, p.category, p.price_cents, p.currency, p.attributes,
       p.updated_at, coalesce(i.quantity, 0) AS stock
FROM products AS p LEFT OUTER JOIN inventory AS i ON i.sku = p.sku
WHERE lower(p.sku) = lower($1)
ORDER BY p.sku = $1 DESC, p.sku
LIMIT 1
"""
TRANSACTION_WORDS = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"}

FloorApiKey = Annotated[str | None, Header(alias="X-API-Key")]


# -- counting -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Counts(Tally):
    requests: int = 0
    pg_statements: int = 0  # Database.queries (floor: its own count)
    pg_autocommit_statements: int = 0  # of those, sent outside BEGIN/COMMIT (each commits alone)
    pg_tx_statements: int = 0  # BEGIN/COMMIT/ROLLBACK seen on the wire (asyncpg query logger)
    pg_commits: int = 0  # of those, COMMITs
    pg_rollbacks: int = 0  # of those, ROLLBACKs
    pg_connects: int = 0  # new PostgreSQL connections (pool "connect" / asyncpg pool init)
    pg_checkouts: int = 0  # pool checkouts (pool "checkout" / floor acquire)
    sa_begins: int = 0  # SQLAlchemy transactions begun on non-AUTOCOMMIT connections
    sa_commits: int = 0  # SQLAlchemy commits on non-AUTOCOMMIT connections
    sa_autocommit_units: int = 0  # SQLAlchemy "transactions" on AUTOCOMMIT connections
    redis_commands: int = 0
    redis_round_trips: int = 0
    upstash_commands: int = 0  # of redis_commands, the bridge's (UpstashBridge.commands)
    upstash_http_requests: int = 0  # of redis_round_trips, the bridge's (.http_requests)
    threadpool_calls: int = 0


class WireLog:
    """An asyncpg query logger: counts transaction-control statements sent on a connection."""

    def __init__(self) -> None:
        self.words: Counter[str] = Counter()  # first word of each logged statement

    def __call__(self, record: Any) -> None:
        words = str(record.query).split(None, 1)
        self.words[words[0].rstrip(";").upper() if words else ""] += 1

    def counts(self) -> Counts:
        return Counts(
            pg_tx_statements=sum(self.words[w] for w in TRANSACTION_WORDS),
            pg_commits=self.words["COMMIT"] + self.words["END"],
            pg_rollbacks=self.words["ROLLBACK"] + self.words["ABORT"],
        )

    def attach(self, connection: Any) -> None:
        if hasattr(connection, "add_query_logger"):
            connection.add_query_logger(self)


class EngineProbe:
    """What one app's database does, from SQLAlchemy events on its engine (nothing is changed)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.wire = WireLog()
        self.connects = self.checkouts = self.autocommit_statements = 0
        self.begins = self.commits = self.autocommit_units = 0
        engine = db.engine.sync_engine
        event.listen(engine, "connect", self._connect)
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "before_cursor_execute", self._statement)

    def _connect(self, dbapi_connection: Any, _record: Any) -> None:
        self.connects += 1
        self.wire.attach(getattr(dbapi_connection, "driver_connection", None))

    def _checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def _begin(self, conn: Any) -> None:
        if _autocommit(conn):
            self.autocommit_units += 1
        else:
            self.begins += 1

    def _commit(self, conn: Any) -> None:
        if not _autocommit(conn):
            self.commits += 1

    def _statement(self, conn: Any, *_: Any) -> None:
        if _autocommit(conn):
            self.autocommit_statements += 1

    def counts(self) -> Counts:
        return self.wire.counts() + Counts(
            pg_statements=self.db.queries.count,
            pg_autocommit_statements=self.autocommit_statements,
            pg_connects=self.connects,
            pg_checkouts=self.checkouts,
            sa_begins=self.begins,
            sa_commits=self.commits,
            sa_autocommit_units=self.autocommit_units,
        )

    def pool(self) -> dict[str, str]:
        pool = self.db.engine.sync_engine.pool
        return {"class": type(pool).__name__, "status": pool.status()}


def _autocommit(conn: Any) -> bool:
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return True
    dbapi_connection = getattr(conn.connection, "dbapi_connection", None)
    return bool(getattr(dbapi_connection, "autocommit", False))


class ThreadpoolTap:
    """Counts `anyio.to_thread.run_sync` calls made from the installing thread, by callable."""

    def __init__(self) -> None:
        self.calls = 0
        self.names: Counter[str] = Counter()
        self._thread = threading.get_ident()
        self._original: Callable[..., Awaitable[Any]] | None = None

    def install(self) -> None:
        module: Any = anyio.to_thread
        original: Callable[..., Awaitable[Any]] = module.run_sync
        tap = self

        async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == tap._thread:
                tap.calls += 1
                tap.names[_callable_name(func)] += 1
            return await original(func, *args, **kwargs)

        module.run_sync = run_sync
        self._original = original

    def uninstall(self) -> None:
        if self._original is not None:
            module: Any = anyio.to_thread
            module.run_sync = self._original
            self._original = None


def _callable_name(func: Any) -> str:
    while hasattr(func, "func"):  # functools.partial, as starlette's run_in_threadpool makes
        func = func.func
    return str(getattr(func, "__qualname__", repr(func)))


@dataclass
class Probe:
    """The process-wide counters (Redis, threadpool), added to a row's own database counts."""

    bridge: UpstashBridge
    tap: RedisWireTap
    threads: ThreadpoolTap

    def counts(self) -> Counts:
        return Counts(
            redis_commands=self.bridge.commands + self.tap.commands,
            redis_round_trips=self.bridge.http_requests + self.tap.round_trips,
            upstash_commands=self.bridge.commands,
            upstash_http_requests=self.bridge.http_requests,
            threadpool_calls=self.threads.calls,
        )


# -- the floor app ------------------------------------------------------------------------------


@dataclass
class FloorStats:
    wire: WireLog = field(default_factory=WireLog)
    statements: int = 0
    connects: int = 0
    checkouts: int = 0

    def counts(self) -> Counts:
        return self.wire.counts() + Counts(
            pg_statements=self.statements,
            pg_autocommit_statements=self.statements,  # no transaction: each commits alone
            pg_connects=self.connects,
            pg_checkouts=self.checkouts,
        )


@dataclass
class Floor:
    app: FastAPI
    pool: asyncpg.Pool
    redis: aioredis.Redis
    stats: FloorStats


async def build_floor(prefix: str) -> Floor:
    stats = FloorStats()

    async def init(connection: asyncpg.Connection) -> None:
        stats.connects += 1
        stats.wire.attach(connection)

    async def keep(_: asyncpg.Connection) -> None:
        """No reset query on release (asyncpg still rolls back an open transaction)."""

    pool = await asyncpg.create_pool(
        apps.database_url(),
        min_size=1,
        max_size=2,
        statement_cache_size=0,
        init=init,
        reset=keep,
    )
    client = aioredis.from_url(apps.REDIS_URL)
    sha = str(await client.script_load(FLOOR_LUA))
    return Floor(floor_app(pool, client, sha, prefix, stats), pool, client, stats)


def floor_app(
    pool: asyncpg.Pool, client: aioredis.Redis, sha: str, prefix: str, stats: FloorStats
) -> FastAPI:
    """`GET /floor/products/{sku}`: one EVALSHA, one query on a pooled connection, the JSON."""
    app = FastAPI(title="floor")

    @app.get("/floor/products/{sku}", response_model=None)
    async def floor_product(sku: str, x_api_key: FloorApiKey = None) -> Response:
        if not x_api_key:
            return JSONResponse({"error": "missing_api_key"}, status_code=401)
        await client.evalsha(sha, 1, f"{prefix}floor:{apps.identity(x_api_key)}", FLOOR_WINDOW_MS)  # type: ignore[misc]
        async with pool.acquire() as connection:
            stats.checkouts += 1
            stats.statements += 1
            row = await connection.fetchrow(FLOOR_SQL, sku)
        if row is None:
            return JSONResponse({"error": "product_not_found"}, status_code=404)
        stock = int(row["stock"])
        return JSONResponse(
            {
                "sku": row["sku"],
                "name": row["name"],
                "description": row["description"],
                "category": row["category"],
                "price_cents": row["price_cents"],
                "currency": row["currency"],
                "attributes": json.loads(row["attributes"]),
                "stock": stock,
                "in_stock": stock > 0,
                "updated_at": row["updated_at"].isoformat(),
            }
        )

    return app


# -- rows ---------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    label: str
    client: AsyncClient
    path: str
    headers: dict[str, str]
    database: Callable[[], Counts]  # the cumulative database counts of the app serving it
    body: dict[str, Any] | None = None  # a POST with this JSON body; None: a GET
    latencies_ms: list[float] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    async def send(self) -> Any:
        if self.body is None:
            return await self.client.get(self.path, headers=self.headers)
        return await self.client.post(self.path, json=self.body, headers=self.headers)

    async def request(self) -> float:
        start = time.perf_counter()
        response = await self.send()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{self.name}: {response.status_code} {response.text[:300]}")
        return elapsed

    async def snapshot(self, probe: Probe) -> Counts:
        await asyncio.sleep(0)  # let the query loggers' call_soon callbacks run
        return self.database() + probe.counts()

    async def measured(self, probe: Probe, n: int, *, timed: bool = True) -> Counts:
        gc.collect()
        before = await self.snapshot(probe)
        for _ in range(n):
            elapsed = await self.request()
            if timed:
                self.latencies_ms.append(elapsed)
        delta = await self.snapshot(probe) - before
        delta.requests = n
        if timed:
            self.counts = self.counts + delta
        return delta


@dataclass
class CallRow(Row):
    """A row timed around an awaitable call instead of an HTTP request."""

    call: Callable[[], Awaitable[Any]] | None = None

    async def send(self) -> Any:
        assert self.call is not None
        return await self.call()

    async def request(self) -> float:
        start = time.perf_counter()
        await self.send()
        return (time.perf_counter() - start) * 1000


@dataclass
class Bench:
    probe: Probe
    prefix: str
    floor: Floor
    am_redis: FastAPI
    am_upstash: FastAPI
    am_memory: FastAPI
    engines: dict[str, EngineProbe]
    clients: list[AsyncClient]
    rows: dict[str, Row] = field(default_factory=dict)


async def build_bench(probe: Probe) -> Bench:
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    am_redis = create_app(apps.make_settings("redis", f"{prefix}am-url:"))
    am_upstash = create_app(apps.make_settings("upstash", f"{prefix}am-up:", probe.bridge.url))
    am_memory = create_app(apps.make_settings("redis", f"{prefix}am-url:"))
    am_redis.include_router(apps.ungated_router())
    # Listen before the first connection, so every connection gets the query logger.
    engines = {
        "am_redis": EngineProbe(am_redis.state.services.db),
        "am_upstash": EngineProbe(am_upstash.state.services.db),
        "am_memory": EngineProbe(am_memory.state.services.db),
    }
    floor = await build_floor(prefix)
    clients = [asgi_client(a) for a in (floor.app, am_redis, am_upstash, am_memory)]
    return Bench(probe, prefix, floor, am_redis, am_upstash, am_memory, engines, clients)


async def seed_bulk(client: AsyncClient) -> str:
    """The bulk row's set-up, after `seed`: the paid plan's limits raised as `seed` raises the free
    plan's (a bulk of 100 costs 10 units), the 99 other products of `BULK_SKUS`, and a second
    account moved to that plan; returns its API key."""
    admin = {"X-API-Key": apps.ADMIN_KEY}
    plan = {"included_calls": PER_MONTH, "requests_per_minute": PER_MINUTE}
    _ok(await client.put(f"/v1/admin/plans/{BULK_PLAN}", json=plan, headers=admin))
    products = [
        {
            "sku": sku,
            "name": f"Bench product {sku}",
            "description": "A sturdy thing.",
            "category": "gadgets",
            "price_cents": 1999,
            "attributes": {"color": "black"},
            "stock": 5,
        }
        for sku in BULK_SKUS
        if sku != SKU
    ]
    _ok(await client.put("/v1/admin/products", json={"products": products}, headers=admin))
    signup = _ok(
        await client.post(
            "/v1/signup",
            json={"email": "bench-bulk@example.com"},
            headers={"X-Forwarded-For": BULK_SIGNUP_ADDRESS},
        ),
        201,
    ).json()
    _ok(
        await client.put(
            f"/v1/admin/accounts/{signup['account_id']}/plan",
            json={"plan": BULK_PLAN},
            headers=admin,
        )
    )
    return str(signup["api_key"])


def _ok(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def add_rows(bench: Bench, api_key: str, bulk_key: str) -> None:
    floor, url, up, _ = bench.clients
    url_db, up_db = bench.engines["am_redis"].counts, bench.engines["am_upstash"].counts
    specs = [
        ("floor", "Floor: minimal app (EVALSHA + pooled asyncpg query)", floor,
         f"/floor/products/{SKU}", bench.floor.stats.counts),
        ("am_redis", "AgentMall gated read, Redis URL", url, f"/v1/products/{SKU}", url_db),
        ("am_upstash", "AgentMall gated read, Upstash REST", up, f"/v1/products/{SKU}", up_db),
        ("am_open", "AgentMall, no gate (same handler)", url, f"/bench/products/{SKU}", url_db),
        ("am_health", "AgentMall `GET /v1/health`", url, "/v1/health", url_db),
    ]  # fmt: skip
    for name, label, client, path, database in specs:
        headers = {"X-API-Key": api_key}
        bench.rows[name] = Row(name, label, client, path, headers, database)
    bench.rows[BULK_ROW] = Row(
        BULK_ROW,
        f"AgentMall bulk read of {len(BULK_SKUS)} SKUs, Redis URL",
        url,
        "/v1/products/bulk",
        {"X-API-Key": bulk_key},
        url_db,
        body={"skus": BULK_SKUS},
    )


async def add_gate_row(bench: Bench) -> list[float]:
    """Row 7: capture the command one hot read sends, then replay it through the same port.

    Returns the list the hot read's own gate commands are timed into from now on (ms, around the
    port's `run_script`, as the replay is timed): the same command in its context."""
    port = bench.am_redis.state.services.redis
    run_script = type(port).run_script  # the replay calls the class's method, never the probe
    sent: list[tuple[Any, list[str], list[Any]]] = []
    in_context: list[float] = []

    async def capture(script: Any, keys: list[str], args: list[Any]) -> Any:
        sent.append((script, keys, args))
        return await run_script(port, script, keys, args)

    port.run_script = capture
    await bench.rows[GOAL_ROW].request()
    if len(sent) != 1:
        raise RuntimeError(f"a warm hot read sent {len(sent)} Redis commands, not 1")
    script, keys, args = sent[0]

    async def timed(script_: Any, keys_: list[str], args_: list[Any]) -> Any:
        if keys_ != keys:  # another row's command (the bulk row's account)
            return await run_script(port, script_, keys_, args_)
        start = time.perf_counter()
        try:
            return await run_script(port, script_, keys_, args_)
        finally:
            in_context.append((time.perf_counter() - start) * 1000)

    port.run_script = timed
    hot = bench.rows[GOAL_ROW]
    bench.rows[GATE_ROW] = CallRow(
        GATE_ROW,
        "Bound: the hot read's gate command alone (the app's Redis port, no HTTP)",
        hot.client,
        "(EVALSHA)",
        {},
        hot.database,
        call=lambda: run_script(port, script, keys, args),
    )
    return in_context


async def add_memory_row(bench: Bench, api_key: str) -> None:
    """Row 8: the hot read on `am_memory`, its gate command answered from memory after the
    first (the product copy is then warm too, as on row 2)."""
    port = bench.am_memory.state.services.redis
    run_script = port.run_script
    replies: dict[tuple[str, tuple[str, ...]], Any] = {}

    async def replay(script: Any, keys: list[str], args: list[Any]) -> Any:
        if script is GATE:
            known = replies.get((script.sha, tuple(keys)))
            if known is not None:
                return list(known)
        reply = await run_script(script, keys, args)
        if script is GATE:
            replies[(script.sha, tuple(keys))] = reply
        return reply

    port.run_script = replay
    bench.rows[MEMORY_ROW] = Row(
        MEMORY_ROW,
        "Reference: the hot read, its gate reply replayed from memory (no Redis)",
        bench.clients[3],
        f"/v1/products/{SKU}",
        {"X-API-Key": api_key},
        bench.engines["am_memory"].counts,
    )
    for _ in range(2):  # the first reads PostgreSQL and keeps the copy; the second is warm
        await bench.rows[MEMORY_ROW].request()


# -- the runs -----------------------------------------------------------------------------------


async def first_requests(bench: Bench) -> dict[str, dict[str, int]]:
    """Each gated row's first request: its key is not cached yet, nor are the products' copies
    (the seeding requests went to the Redis-URL app, so only the Upstash app has opened no
    connection yet)."""
    cold = {}
    for name in ("am_redis", "am_upstash", BULK_ROW):
        delta = await bench.rows[name].measured(bench.probe, 1, timed=False)
        cold[name] = per_request(delta)
    return cold


async def check_bulk(bench: Bench) -> None:
    """The bulk row's answer (untimed): all of `BULK_SKUS`, in order, none missing."""
    response = _ok(await bench.rows[BULK_ROW].send()).json()
    found = [product["sku"] for product in response["data"]]
    if found != BULK_SKUS or response["not_found"]:
        raise RuntimeError(
            f"bulk read: {len(found)} products found (want {len(BULK_SKUS)}), "
            f"not found: {response['not_found'][:5]}"
        )


async def warm_up(bench: Bench, n: int) -> None:
    for row in bench.rows.values():
        for _ in range(n):
            await row.request()


async def after_quiet(bench: Bench) -> dict[str, Counts]:
    """One untimed request per row after the settle: pooled connections sat idle that long."""
    return {
        name: await row.measured(bench.probe, 1, timed=False) for name, row in bench.rows.items()
    }


async def sequential(bench: Bench, requests: int, rounds: int) -> None:
    names = list(bench.rows)
    for i, size in enumerate(chunks(requests, rounds)):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            if size:
                await bench.rows[name].measured(bench.probe, size)


async def server_stats(admin: asyncpg.Connection, settle: float) -> dict[str, int]:
    """`pg_stat_database` and `pg_stat_activity` for the bench database, after `settle` s."""
    await asyncio.sleep(settle)
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    row = await admin.fetchrow(
        "SELECT d.sessions, d.xact_commit, d.xact_rollback, "
        "(SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS backends "
        "FROM pg_stat_database d WHERE d.datname = $1",
        DATABASE,
    )
    if row is None:
        raise RuntimeError(f"no pg_stat_database row for {DATABASE}")
    return {k: int(v) for k, v in row.items()}


# -- results ------------------------------------------------------------------------------------


def row_result(row: Row, floor: Row, health: Row) -> dict[str, Any]:
    median = statistics.median(row.latencies_ms)
    return {
        "name": row.name,
        "label": row.label,
        "path": row.path,
        "requests": row.counts.requests,
        "median_ms": median,
        "p95_ms": p95(row.latencies_ms),
        "median_ratio_to_floor": median / statistics.median(floor.latencies_ms),
        "p95_ratio_to_floor": p95(row.latencies_ms) / p95(floor.latencies_ms),
        "median_ratio_to_health": median / statistics.median(health.latencies_ms),
        "per_request": row.counts.per_request(),
        "totals": asdict(row.counts),
    }


@dataclass(frozen=True, slots=True)
class Goal:
    row: str  # the label of the row it is checked on
    goal: str  # what is asked
    measured: str  # the figure, as printed
    met: bool

    def line(self) -> str:
        return f"- {'✓' if self.met else '✗'} {self.goal}: {self.measured}"

    def failure(self) -> str:
        return f"{self.row}: {self.goal}: {self.measured}"


def _exactly(value: float, want: float) -> bool:
    """Per-request averages of whole counts: equal up to float rounding."""
    return math.isclose(value, want, abs_tol=1e-9)


def goals(rows: list[dict[str, Any]]) -> list[Goal]:
    """Every goal (module docstring) with its measured figure, in the order printed."""
    by_name = {r["name"]: r for r in rows}
    hot, up, bulk = by_name[GOAL_ROW], by_name[UPSTASH_ROW], by_name[BULK_ROW]
    floor, health = by_name["floor"], by_name[HEALTH_ROW]
    hot_per, up_per, bulk_per = hot["per_request"], up["per_request"], bulk["per_request"]
    to_health, to_floor = hot["median_ratio_to_health"], hot["median_ratio_to_floor"]
    return [
        Goal(
            hot["label"],
            "0 new PostgreSQL connections per warm hot read",
            fmt(hot_per["pg_connects"]),
            _exactly(hot_per["pg_connects"], 0.0),
        ),
        Goal(
            hot["label"],
            "(a) 0.00 PostgreSQL statements per warm hot read",
            fmt(hot_per["pg_statements"]),
            _exactly(hot_per["pg_statements"], 0.0),
        ),
        Goal(
            hot["label"],
            f"(b) hot read median ≤ {HEALTH_RATIO_GOAL:g}× the health row's",
            f"{fmt(hot['median_ms'])} ms ÷ {fmt(health['median_ms'])} ms = {fmt(to_health)}×",
            to_health <= HEALTH_RATIO_GOAL,
        ),
        Goal(
            hot["label"],
            f"(b) hot read median ≤ {FLOOR_RATIO_GOAL:g}× the floor's",
            f"{fmt(hot['median_ms'])} ms ÷ {fmt(floor['median_ms'])} ms = {fmt(to_floor)}×",
            to_floor <= FLOOR_RATIO_GOAL,
        ),
        Goal(
            up["label"],
            "(c) exactly 1 Upstash command per request, in 1 HTTP request (bridge counters)",
            f"{fmt(up_per['upstash_commands'])} commands in "
            f"{fmt(up_per['upstash_http_requests'])} HTTP requests",
            _exactly(up_per["upstash_commands"], 1.0)
            and _exactly(up_per["upstash_http_requests"], 1.0),
        ),
        Goal(
            bulk["label"],
            f"(d) bulk of {len(BULK_SKUS)} SKUs: exactly 1 Redis command per warm request",
            f"{fmt(bulk_per['redis_commands'])} in {fmt(bulk_per['redis_round_trips'])} "
            "round trips",
            _exactly(bulk_per["redis_commands"], 1.0),
        ),
        Goal(
            bulk["label"],
            f"(d) bulk of {len(BULK_SKUS)} SKUs: 0.00 PostgreSQL statements per warm request",
            fmt(bulk_per["pg_statements"]),
            _exactly(bulk_per["pg_statements"], 0.0),
        ),
    ]


def goal_failures(rows: list[dict[str, Any]]) -> list[str]:
    """One string per goal missed (the run then exits 1)."""
    return [goal.failure() for goal in goals(rows) if not goal.met]


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


async def environment(admin: asyncpg.Connection) -> dict[str, Any]:
    client = aioredis.from_url(apps.REDIS_URL)
    try:
        redis_version = str((await client.info("server"))["redis_version"])
    finally:
        await client.aclose()
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if len(line) > 3]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted": [p for p in dirty if not p.startswith("bench/")],
        "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "postgresql": str(await admin.fetchval("SHOW server_version")),
        "redis": redis_version,
        "fastapi": fastapi.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "asyncpg": asyncpg.__version__,
        "redis_py": redis.__version__,
    }


# -- orchestration ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    apps.PG_DATABASE = DATABASE  # its own database: bench.gate may run meanwhile
    await apps.create_database()
    tap, threads = RedisWireTap(), ThreadpoolTap()
    tap.install()
    threads.install()
    bridge = UpstashBridge(apps.REDIS_URL, token=apps.UPSTASH_TOKEN)
    bridge.start()
    admin = await asyncpg.connect(apps.PG_ADMIN_URL)
    bench: Bench | None = None
    try:
        env = await environment(admin)
        bench = await build_bench(Probe(bridge, tap, threads))
        api_key = await seed(bench.clients[1])
        bulk_key = await seed_bulk(bench.clients[1])
        add_rows(bench, api_key, bulk_key)
        cold = await first_requests(bench)
        await check_bulk(bench)
        in_context = await add_gate_row(bench)
        await add_memory_row(bench, api_key)
        await warm_up(bench, args.warmup)
        threads.names.clear()
        server_before = await server_stats(admin, args.settle)
        quiet = await after_quiet(bench)
        in_context.clear()
        await sequential(bench, args.requests, args.rounds)
        server_after = await server_stats(admin, args.settle)
        floor, health = bench.rows["floor"], bench.rows[HEALTH_ROW]
        rows = [row_result(row, floor, health) for row in bench.rows.values()]
        client = sum(quiet.values(), start=sum((r.counts for r in bench.rows.values()), Counts()))
        env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        return {
            "config": config(args, started),
            "environment": env,
            "app_pools": {name: probe.pool() for name, probe in bench.engines.items()},
            "rows": rows,
            "cold": cold,
            "threadpool_callables": dict(threads.names.most_common()),
            "after_quiet": {name: per_request(c) for name, c in quiet.items()},
            "server": server_view(server_before, server_after, client, args.settle),
            "goals": [asdict(goal) for goal in goals(rows)],
            "goal_failures": goal_failures(rows),
            "gate_in_context_ms": statistics.median(in_context),
        }
    finally:
        await cleanup(bench, bridge, admin)
        threads.uninstall()
        tap.uninstall()


def per_request(counts: Counts) -> dict[str, int]:
    return {k: v for k, v in asdict(counts).items() if k != "requests"}


def server_view(
    before: dict[str, int], after: dict[str, int], client: Counts, settle: float
) -> dict[str, Any]:
    """Server-side deltas between the two reads, next to what the client side expects: a new
    session per connect, a commit per statement outside BEGIN/COMMIT, per COMMIT and per new
    session (a backend's start-up reads the catalogs in a transaction of its own), a rollback per
    ROLLBACK."""
    return {
        "settle_seconds": settle,
        "before": before,
        "after": after,
        "requests": client.requests,
        "sessions": after["sessions"] - before["sessions"],
        "xact_commit": after["xact_commit"] - before["xact_commit"],
        "xact_rollback": after["xact_rollback"] - before["xact_rollback"],
        "expected_sessions": client.pg_connects,
        "expected_xact_commit": (
            client.pg_autocommit_statements + client.pg_commits + client.pg_connects
        ),
        "expected_xact_rollback": client.pg_rollbacks,
    }


def config(args: argparse.Namespace, started: datetime) -> dict[str, Any]:
    return {
        "command": "python -m bench.floor " + " ".join(sys.argv[1:]),
        "requests": args.requests,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "settle_seconds": args.settle,
        "started": started.isoformat(timespec="seconds"),
        "database": DATABASE,
    }


async def cleanup(bench: Bench | None, bridge: UpstashBridge, admin: asyncpg.Connection) -> None:
    """Every step runs even if an earlier one failed; what happened goes to stderr."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if bench is not None:
        b = bench
        steps += [(f"close client {i}", c.aclose) for i, c in enumerate(b.clients)]
        steps += [
            ("close AgentMall (Redis URL) services", b.am_redis.state.services.close),
            ("close AgentMall (Upstash) services", b.am_upstash.state.services.close),
            ("close AgentMall (memory) services", b.am_memory.state.services.close),
            ("close floor pool", b.floor.pool.close),
            ("close floor Redis client", b.floor.redis.aclose),
            ("delete Redis keys", lambda: delete_keys([f"{b.prefix}*"])),
        ]
    steps += [
        ("close admin connection", admin.close),
        ("stop bridge", lambda: asyncio.to_thread(bridge.stop)),
        ("drop database", apps.drop_database),
    ]
    for label, step in steps:
        try:
            outcome = await step()
        except Exception as exc:  # keep cleaning up; report it
            print(f"cleanup: {label} failed: {exc!r}", file=sys.stderr)
        else:
            if label == "delete Redis keys":
                print(f"cleanup: deleted {outcome} Redis keys", file=sys.stderr)


# -- Markdown -----------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    cfg, env = result["config"], result["environment"]
    started = cfg["started"].replace("T", " ").replace("+00:00", " UTC")
    dirty = env["uncommitted"]
    tree = f"; uncommitted changes in {', '.join(f'`{p}`' for p in dirty)}" if dirty else ""
    pools = "; ".join(
        f"{name}: `{pool['class']}` ({pool['status'].strip()})"
        for name, pool in result["app_pools"].items()
    )
    lines = [
        "# Floor: gated read against a minimal app",
        "",
        "Command (from the repository root):",
        "",
        "```",
        f".venv/bin/{cfg['command'].strip()}",
        "```",
        "",
        f"- **Date:** {started}; commit `{env['commit'] or 'unknown'}`{tree}.",
        f"- **Machine:** {env['cpus']} CPUs, load average {env['load_average_start'][0]} at the "
        f"start and {env['load_average_end'][0]} at the end (shared: read ratios, not "
        f"milliseconds). PostgreSQL {env['postgresql']} and Redis {env['redis']} on the same "
        f"host. Python {env['python']}, FastAPI {env['fastapi']}, SQLAlchemy "
        f"{env['sqlalchemy']}, asyncpg {env['asyncpg']}, redis-py {env['redis_py']}.",
        f"- **Run:** {cfg['requests']} timed sequential requests per row after {cfg['warmup']} "
        f"warm-up requests, interleaved over {cfg['rounds']} rounds; in-process httpx "
        f"`ASGITransport`; database `{cfg['database']}`.",
        f"- **App database pools at the end:** {pools}.",
        "",
        "| Row | Median (ms) | p95 (ms) | Median ÷ floor | Median ÷ health | PG statements/req "
        "| PG BEGIN+COMMIT/req | New PG connections/req | Pool checkouts/req "
        "| Redis commands/req | Redis round trips/req | Threadpool calls/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        per = row["per_request"]
        ratio = (
            "1.00× (floor)" if row["name"] == "floor" else f"{fmt(row['median_ratio_to_floor'])}×"
        )
        to_health = (
            "1.00× (health)"
            if row["name"] == HEALTH_ROW
            else f"{fmt(row['median_ratio_to_health'])}×"
        )
        lines.append(
            f"| {row['label']} | {fmt(row['median_ms'])} | {fmt(row['p95_ms'])} | {ratio} "
            f"| {to_health} | {fmt(per['pg_statements'])} | {fmt(per['pg_tx_statements'])} "
            f"| {fmt(per['pg_connects'])} | {fmt(per['pg_checkouts'])} "
            f"| {fmt(per['redis_commands'])} | {fmt(per['redis_round_trips'])} "
            f"| {fmt(per['threadpool_calls'])} |"
        )
    lines += ["", goal_lines(result), "", *notes(result)]
    return "\n".join(lines)


def goal_lines(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            "Goals (issue 21; warm requests, whole-run averages; ✓ met, ✗ missed):",
            *(goal.line() + f" ({goal.row})" for goal in goals(result["rows"])),
        ]
    )


def notes(result: dict[str, Any]) -> list[str]:
    server = result["server"]
    lines = [
        "Notes:",
        "",
        f"- Server side (`pg_stat_database` for `{result['config']['database']}` over all rows' "
        f"{server['requests']} requests between two reads, each after "
        f"{server['settle_seconds']:g} s of quiet; client-side expectation in brackets): "
        f"{server['sessions']} new sessions [{server['expected_sessions']} connects], "
        f"{server['xact_commit']} commits [{server['expected_xact_commit']}: statements outside "
        f"BEGIN/COMMIT + COMMITs + sessions], {server['xact_rollback']} rollbacks "
        f"[{server['expected_xact_rollback']} ROLLBACKs]; backends connected: "
        f"{server['before']['backends']} before, {server['after']['backends']} after.",
    ]
    for row in result["rows"]:
        per = row["per_request"]
        if per["sa_begins"] or per["sa_autocommit_units"]:
            lines.append(
                f"- SQLAlchemy units, {row['label']}: {fmt(per['sa_begins'])} transactions/request"
                f" (BEGIN sent), {fmt(per['sa_autocommit_units'])} on AUTOCOMMIT connections "
                "(no BEGIN)."
            )
    callables = result["threadpool_callables"]
    if callables:
        names = ", ".join(f"`{name}` ×{count}" for name, count in callables.items())
        lines.append(f"- Threadpool calls during the timed phase, all rows: {names}.")
    warm = {row["name"]: row["per_request"] for row in result["rows"]}
    for name, quiet in result["after_quiet"].items():
        keys = ("pg_statements", "pg_tx_statements", "pg_connects")
        if all(math.isclose(quiet[k], warm[name][k]) for k in keys):
            continue
        lines.append(
            f"- First request of {name} after {server['settle_seconds']:g} s idle (untimed, "
            f"between the server reads): {quiet['pg_statements']} PG statements, "
            f"{quiet['pg_connects']} connects, {quiet['pg_tx_statements']} BEGIN/COMMIT/ROLLBACK "
            f"on the wire (warm: {fmt(warm[name]['pg_statements'])}, "
            f"{fmt(warm[name]['pg_connects'])}, {fmt(warm[name]['pg_tx_statements'])})."
        )
    for name, cold in result["cold"].items():
        lines.append(
            f"- First gated request of {name} (key and product copies not cached yet; after "
            "the seeding requests): "
            f"{cold['pg_statements']} PG statements, {cold['pg_connects']} connects, "
            f"{cold['pg_tx_statements']} BEGIN/COMMIT/ROLLBACK, {cold['redis_commands']} Redis "
            f"commands in {cold['redis_round_trips']} round trips."
        )
    by_name = {row["name"]: row for row in result["rows"]}
    hot, health = by_name[GOAL_ROW]["median_ms"], by_name[HEALTH_ROW]["median_ms"]
    alone, memory = by_name[GATE_ROW]["median_ms"], by_name[MEMORY_ROW]["median_ms"]
    path = memory - health
    lines.append(
        f"- The hot read's parts in this run (medians): health {fmt(health)} ms; the app's own "
        f"path (the reference row, gate reply from memory, − health) {fmt(path)} ms = "
        f"{fmt(path / health)}× health; the gate command alone {fmt(alone)} ms = "
        f"{fmt(alone / health)}× health. Their sum, {fmt(health + path + alone)} ms = "
        f"{fmt((health + path + alone) / health)}× health, against the hot read's {fmt(hot)} ms "
        f"= {fmt(hot / health)}×. The same gate command timed inside the hot reads: "
        f"{fmt(result['gate_in_context_ms'])} ms (median), against {fmt(alone)} ms alone."
    )
    failures = result["goal_failures"]
    lines.append("- Verdict: " + ("all goals met." if not failures else "; ".join(failures) + "."))
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=summary)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests per row first")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument(
        "--settle",
        type=float,
        default=12.0,
        help="seconds of quiet before each pg_stat_database read (idle backends flush late)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0 or args.settle < 0:
        parser.error("--requests and --rounds must be at least 1, --warmup and --settle ≥ 0")
    return args


def main(argv: list[str] | None = None) -> int:
    return cli(parse_args(argv), run, markdown, "goal_failures")


if __name__ == "__main__":
    sys.exit(main())
