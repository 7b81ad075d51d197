"""Gate benchmark: what the AgentMall gate costs per metered request, side by side with others.

    .venv/bin/python -m bench.gate [--requests N] [--concurrency C] [--json]

One run, one process, one event loop, four gates in front of the same catalog handler
(`GET .../products/{sku}`, one Postgres query) and their no-gate baselines:

1. AgentMall gate, Upstash REST (`UpstashBridge`: real HTTP in front of the real Redis);
2. AgentMall gate, Redis by URL;
3. upstash-ratelimit 1.1.0, a per-minute SlidingWindow then a 30-day FixedWindow, same bridge;
4. slowapi, "X/minute;Y/month" on a Redis backend (a separate small app, same database).

Requests are sequential, interleaved in rounds (every route runs a chunk per round, order
rotated), after a warm-up that is kept out of the counts. Counts per request: Redis commands and
round trips (bridge counters for Upstash, a redis-py wire tap for Redis by URL and slowapi),
Postgres statements (`Database.queries`), and `INFO commandstats` deltas as a server-side
cross-check. Exits 1 when an AgentMall row misses its budget: 1 Redis command and 1 round trip per
metered request, 0 Postgres queries added by the gate for a warm key.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from upstash_redis.asyncio import Redis as UpstashRedis

from app.core.db import Database
from app.main import create_app
from app.redis.port import RedisPort
from bench import apps
from bench.probes import CommandStats, RedisWireTap, read_commandstats
from tests.support.upstash_bridge import UpstashBridge

# The plan limits every limiter gets, high enough that every measured request is admitted.
# PlanUpdate caps requests_per_minute at 100,000 (1,000,000 is answered 422).
PER_MINUTE = 100_000
PER_MONTH = 10_000_000
SKU = "BENCH-0001"
CLIENT_ADDR = ("203.0.113.7", 50000)


# -- counters -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    requests: int = 0
    redis_commands: int = 0  # client-sent: bridge commands + redis-py wire commands
    round_trips: int = 0  # bridge HTTP requests + redis-py writes
    pg_queries: int = 0
    port_commands: int = 0  # the app's own RedisPort counter (AgentMall routes only)
    cs_scripts: int = 0  # INFO commandstats: EVAL/EVALSHA runs (server-wide)
    cs_executions: int = 0  # INFO commandstats: all executions incl. inside Lua, minus INFO

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def per_request(self) -> dict[str, float]:
        n = max(self.requests, 1)
        return {f.name: getattr(self, f.name) / n for f in fields(self) if f.name != "requests"}


@dataclass
class Probe:
    bridge: UpstashBridge
    tap: RedisWireTap

    def snapshot(self, db: Database, port: RedisPort | None) -> Counts:
        stats: CommandStats = read_commandstats()
        return Counts(
            redis_commands=self.bridge.commands + self.tap.commands,
            round_trips=self.bridge.http_requests + self.tap.round_trips,
            pg_queries=db.queries.count,
            port_commands=port.commands if port else 0,
            cs_scripts=stats.scripts,
            cs_executions=stats.executions,
        )


@dataclass
class Route:
    name: str
    client: AsyncClient
    path: str
    db: Database
    port: RedisPort | None = None
    headers: dict[str, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    async def request(self) -> float:
        start = time.perf_counter()
        response = await self.client.get(self.path, headers=self.headers)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{self.name}: {response.status_code} {response.text[:300]}")
        return elapsed

    async def measured(self, probe: Probe, n: int, *, timed: bool = True) -> Counts:
        """`n` sequential requests; adds their counts (and latencies) to this route's totals."""
        gc.collect()
        before = probe.snapshot(self.db, self.port)
        for _ in range(n):
            elapsed = await self.request()
            if timed:
                self.latencies_ms.append(elapsed)
        delta = probe.snapshot(self.db, self.port) - before
        delta.requests = n
        self.counts = self.counts + delta
        return delta


# -- set-up -------------------------------------------------------------------------------------


@dataclass
class Bench:
    probe: Probe
    prefix: str
    am_upstash: FastAPI
    am_redis: FastAPI
    slow: FastAPI
    slow_db: Database
    ratelimit_redis: UpstashRedis
    clients: list[AsyncClient]
    routes: dict[str, Route] = field(default_factory=dict)


def asgi_client(app: FastAPI) -> AsyncClient:
    return AsyncClient(
        transport=ASGITransport(app=app, client=CLIENT_ADDR), base_url="http://bench"
    )


async def seed(client: AsyncClient) -> str:
    """High plan limits, one product, one signed-up account; returns its API key."""
    admin = {"X-API-Key": apps.ADMIN_KEY}
    plan = {"included_calls": PER_MONTH, "requests_per_minute": PER_MINUTE}
    _ok(await client.put("/v1/admin/plans/free", json=plan, headers=admin))
    product = {
        "sku": SKU,
        "name": "Bench product",
        "description": "A sturdy thing.",
        "category": "gadgets",
        "price_cents": 1999,
        "attributes": {"color": "black"},
        "stock": 5,
    }
    _ok(await client.put("/v1/admin/products", json={"products": [product]}, headers=admin))
    response = _ok(await client.post("/v1/signup", json={"email": "bench@example.com"}), 201)
    return str(response.json()["api_key"])


def _ok(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def build_bench(probe: Probe, strategy: str) -> Bench:
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    am_upstash = create_app(apps.make_settings("upstash", f"{prefix}am-up:", probe.bridge.url))
    am_redis = create_app(apps.make_settings("redis", f"{prefix}am-url:"))
    ratelimit_redis = UpstashRedis(
        url=probe.bridge.url, token=apps.UPSTASH_TOKEN, rest_retries=0, allow_telemetry=False
    )
    limiters = apps.TwoLimiters(ratelimit_redis, f"{prefix}url:", PER_MINUTE, PER_MONTH)
    am_upstash.include_router(apps.ungated_router())
    am_upstash.include_router(apps.two_limiters_router(limiters))
    am_redis.include_router(apps.ungated_router())
    slow_db = Database(apps.make_settings("none", prefix))
    limits = f"{PER_MINUTE}/minute;{PER_MONTH}/month"
    slow = apps.slowapi_app(slow_db, limits, f"{prefix}slowapi", strategy)
    clients = [asgi_client(a) for a in (am_upstash, am_redis, slow)]
    return Bench(probe, prefix, am_upstash, am_redis, slow, slow_db, ratelimit_redis, clients)


def add_routes(bench: Bench, api_key: str) -> None:
    up, url, slow = bench.clients
    up_svc, url_svc = bench.am_upstash.state.services, bench.am_redis.state.services
    specs = [
        ("am_upstash", up, f"/v1/products/{SKU}", up_svc.db, up_svc.redis),
        ("am_upstash_open", up, f"/bench/products/{SKU}", up_svc.db, up_svc.redis),
        ("two_limiters", up, f"/bench/ratelimit/products/{SKU}", up_svc.db, None),
        ("am_redis", url, f"/v1/products/{SKU}", url_svc.db, url_svc.redis),
        ("am_redis_open", url, f"/bench/products/{SKU}", url_svc.db, url_svc.redis),
        ("slowapi", slow, f"/limited/products/{SKU}", bench.slow_db, None),
        ("slowapi_open", slow, f"/open/products/{SKU}", bench.slow_db, None),
    ]
    headers = {"X-API-Key": api_key}
    for name, client, path, db, port in specs:
        bench.routes[name] = Route(name, client, path, db, port, dict(headers))


# -- the runs -----------------------------------------------------------------------------------


async def first_requests(bench: Bench) -> dict[str, dict[str, float]]:
    """Each AgentMall app's first gated request: a cold key cache (the key is loaded)."""
    cold: dict[str, dict[str, float]] = {}
    for name in ("am_upstash", "am_redis"):
        delta = await bench.routes[name].measured(bench.probe, 1, timed=False)
        cold[name] = {k: v for k, v in asdict(delta).items() if k != "requests"}
        bench.routes[name].counts = Counts()
    return cold


async def warm_up(bench: Bench, n: int, concurrency: int) -> None:
    for route in bench.routes.values():
        for _ in range(n):
            await route.request()
        if concurrency > 1:  # open the connections a concurrent run needs
            await asyncio.gather(*(route.request() for _ in range(concurrency * 2)))


def chunks(total: int, rounds: int) -> Iterator[int]:
    base, extra = divmod(total, rounds)
    for i in range(rounds):
        yield base + (1 if i < extra else 0)


async def sequential(bench: Bench, requests: int, rounds: int) -> None:
    """`requests` timed requests per route, interleaved: each round runs a chunk of every route."""
    names = list(bench.routes)
    for i, size in enumerate(chunks(requests, rounds)):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            if size:
                await bench.routes[name].measured(bench.probe, size)


@dataclass
class ConcurrentResult:
    name: str
    counts: Counts
    seconds: float

    @property
    def rps(self) -> float:
        return self.counts.requests / self.seconds


async def concurrent(route: Route, probe: Probe, n: int, workers: int) -> ConcurrentResult:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await route.request()

    gc.collect()
    before = probe.snapshot(route.db, route.port)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    seconds = time.perf_counter() - start
    delta = probe.snapshot(route.db, route.port) - before
    delta.requests = n
    return ConcurrentResult(route.name, delta, seconds)


# -- results ------------------------------------------------------------------------------------

ROWS = [
    ("AgentMall gate via Upstash REST", "am_upstash", "am_upstash_open", True),
    ("AgentMall gate via Redis URL", "am_redis", "am_redis_open", True),
    ("upstash-ratelimit ×2 via Upstash REST", "two_limiters", "am_upstash_open", False),
    ("slowapi (Redis)", "slowapi", "slowapi_open", False),
]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def row_result(label: str, gated: Route, base: Route, agentmall: bool) -> dict[str, Any]:
    g, b = gated.counts.per_request(), base.counts.per_request()
    g_med, b_med = statistics.median(gated.latencies_ms), statistics.median(base.latencies_ms)
    g_p95, b_p95 = p95(gated.latencies_ms), p95(base.latencies_ms)
    return {
        "label": label,
        "route": gated.name,
        "baseline": base.name,
        "agentmall": agentmall,
        "requests": gated.counts.requests,
        "redis_commands_per_request": g["redis_commands"] - b["redis_commands"],
        "round_trips_per_request": g["round_trips"] - b["round_trips"],
        "pg_queries_added_per_request": g["pg_queries"] - b["pg_queries"],
        "port_commands_per_request": g["port_commands"] - b["port_commands"],
        "commandstats_scripts_per_request": g["cs_scripts"] - b["cs_scripts"],
        "commandstats_executions_per_request": g["cs_executions"] - b["cs_executions"],
        "median_ms": g_med,
        "baseline_median_ms": b_med,
        "p95_ms": g_p95,
        "baseline_p95_ms": b_p95,
        "median_added_ms": g_med - b_med,
        "p95_added_ms": g_p95 - b_p95,
        "median_ratio": g_med / b_med,
    }


def concurrency_result(
    label: str, gated: ConcurrentResult, base: ConcurrentResult
) -> dict[str, Any]:
    g, b = gated.counts.per_request(), base.counts.per_request()
    return {
        "label": label,
        "requests": gated.counts.requests,
        "redis_commands_per_request": g["redis_commands"] - b["redis_commands"],
        "round_trips_per_request": g["round_trips"] - b["round_trips"],
        "pg_queries_added_per_request": g["pg_queries"] - b["pg_queries"],
        "commandstats_scripts_per_request": g["cs_scripts"] - b["cs_scripts"],
        "rps": gated.rps,
        "baseline_rps": base.rps,
        "throughput_ratio": gated.rps / base.rps,
    }


def budget_failures(rows: list[dict[str, Any]]) -> list[str]:
    """Exact checks (per-request averages of whole counts) on the AgentMall rows."""
    failures = []
    for row in rows:
        if not row.get("agentmall"):
            continue
        checks = {
            "Redis commands/request": (row["redis_commands_per_request"], 1.0),
            "round trips/request": (row["round_trips_per_request"], 1.0),
            "Postgres queries added/request": (row["pg_queries_added_per_request"], 0.0),
        }
        for what, (got, want) in checks.items():
            if not math.isclose(got, want, abs_tol=1e-9):
                failures.append(f"{row['label']}: {what} = {got:.4f} (budget {want:g})")
    return failures


def crosscheck_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Where server-side script runs (commandstats) differ from the client-side counts."""
    notes = []
    for row in rows:
        client, server = row["redis_commands_per_request"], row["commandstats_scripts_per_request"]
        if not math.isclose(client, server, abs_tol=1e-9):
            notes.append(
                f"{row['label']}: commandstats EVAL/EVALSHA {server:.3f}/request vs "
                f"{client:.3f} client-side (other clients of the shared Redis active?)"
            )
    return notes


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"Gate benchmark, {cfg['requests']} sequential requests per route after "
        f"{cfg['warmup']} warm-up requests, {cfg['rounds']} interleaved rounds "
        f"({cfg['started']}, {cfg['cpus']} CPUs).",
        "",
        "| Gate | Redis commands/request | Round trips/request | Postgres queries/request "
        "added by the gate (warm key) | Median added latency (ms) | p95 added latency (ms) "
        "| Added latency ratio vs no gate (median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        pg = fmt(row["pg_queries_added_per_request"])
        pg_cell = pg if row["agentmall"] else f"n/a (measured {pg})"
        lines.append(
            f"| {row['label']} | {fmt(row['redis_commands_per_request'])} "
            f"| {fmt(row['round_trips_per_request'])} | {pg_cell} "
            f"| {fmt(row['median_added_ms'])} | {fmt(row['p95_added_ms'])} "
            f"| {fmt(row['median_ratio'])}× |"
        )
    lines += ["", budget_line(result), ""]
    lines += details(result)
    return "\n".join(lines)


def budget_line(result: dict[str, Any]) -> str:
    verdict = "PASS" if not result["budget_failures"] else "FAIL"
    line = (
        "Budgets (AgentMall rows): 1 Redis command and 1 round trip per metered request, "
        f"0 Postgres queries for a warm key: **{verdict}**"
    )
    if result["budget_failures"]:
        line += "\n" + "\n".join(f"- {f}" for f in result["budget_failures"])
    return line


def details(result: dict[str, Any]) -> list[str]:
    lines = [
        "Latency (ms) and server-side cross-check (INFO commandstats, server-wide):",
        "",
        "| Gate | median gated / no gate | p95 gated / no gate | EVAL+EVALSHA/request "
        "| Redis executions/request incl. inside Lua |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['label']} | {fmt(row['median_ms'])} / {fmt(row['baseline_median_ms'])} "
            f"| {fmt(row['p95_ms'])} / {fmt(row['baseline_p95_ms'])} "
            f"| {fmt(row['commandstats_scripts_per_request'])} "
            f"| {fmt(row['commandstats_executions_per_request'])} |"
        )
    lines += ["", *(f"- cross-check: {n}" for n in result["crosscheck"] or ["all match"])]
    for name, cold in result["cold"].items():
        lines.append(
            f"- cold key ({name}, first gated request on a fresh instance): "
            f"{cold['pg_queries']} Postgres queries (handler included), "
            f"{cold['redis_commands']} Redis commands, {cold['round_trips']} round trips"
        )
    if result["concurrency"]:
        lines += concurrency_table(result)
    return lines


def concurrency_table(result: dict[str, Any]) -> list[str]:
    workers = result["config"]["concurrency"]
    lines = [
        "",
        f"Concurrency run ({workers} concurrent clients, {result['config']['requests']} "
        "requests per route; same counting):",
        "",
        "| Gate | Redis commands/request | Round trips/request | Postgres queries added/request "
        "| Throughput gated / no gate (req/s) | Throughput ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["concurrency"]:
        lines.append(
            f"| {row['label']} | {fmt(row['redis_commands_per_request'])} "
            f"| {fmt(row['round_trips_per_request'])} "
            f"| {fmt(row['pg_queries_added_per_request'])} "
            f"| {fmt(row['rps'], 0)} / {fmt(row['baseline_rps'], 0)} "
            f"| {fmt(row['throughput_ratio'])}× |"
        )
    return lines


# -- orchestration ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    await apps.create_database()
    tap = RedisWireTap()
    tap.install()
    bridge = UpstashBridge(apps.REDIS_URL, token=apps.UPSTASH_TOKEN)
    bridge.start()
    bench: Bench | None = None
    try:
        bench = build_bench(Probe(bridge, tap), args.slowapi_strategy)
        api_key = await seed(bench.clients[0])
        add_routes(bench, api_key)
        cold = await first_requests(bench)
        await warm_up(bench, args.warmup, args.concurrency)
        await sequential(bench, args.requests, args.rounds)
        rows = [row_result(lbl, bench.routes[g], bench.routes[b], am) for lbl, g, b, am in ROWS]
        conc = await concurrency_rows(bench, args) if args.concurrency > 1 else []
        return {
            "config": config(args, started),
            "rows": rows,
            "concurrency": conc,
            "cold": cold,
            "budget_failures": budget_failures(rows) + budget_failures(conc_as_rows(conc)),
            "crosscheck": crosscheck_notes(rows),
        }
    finally:
        await cleanup(bench, bridge, tap)


async def concurrency_rows(bench: Bench, args: argparse.Namespace) -> list[dict[str, Any]]:
    results: dict[str, ConcurrentResult] = {}
    for name, route in bench.routes.items():
        results[name] = await concurrent(route, bench.probe, args.requests, args.concurrency)
    rows = []
    for label, gated, base, agentmall in ROWS:
        row = concurrency_result(label, results[gated], results[base])
        row["agentmall"] = agentmall
        rows.append(row)
    return rows


def conc_as_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "label": f"{r['label']} (concurrent)"} for r in rows]


def config(args: argparse.Namespace, started: str) -> dict[str, Any]:
    import os

    return {
        "requests": args.requests,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "slowapi_strategy": args.slowapi_strategy,
        "per_minute_limit": PER_MINUTE,
        "per_month_limit": PER_MONTH,
        "started": started,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


async def cleanup(bench: Bench | None, bridge: UpstashBridge, tap: RedisWireTap) -> None:
    """Close clients and apps, delete every Redis key this run made, stop the bridge, drop DB."""
    if bench is not None:
        for client in bench.clients:
            await client.aclose()
        for app in (bench.am_upstash, bench.am_redis):
            await app.state.services.close()
        await bench.ratelimit_redis.close()
        with suppress(Exception):
            apps.close_slowapi(bench.slow)
        await bench.slow_db.dispose()
        await delete_keys([f"{bench.prefix}*", f"LIMITS:LIMITER/{bench.prefix}slowapi/*"])
    bridge.stop()
    tap.uninstall()
    await apps.drop_database()


async def delete_keys(patterns: list[str]) -> int:
    client = aioredis.from_url(apps.REDIS_URL)
    deleted = 0
    try:
        for pattern in patterns:
            keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
            if keys:
                deleted += int(await client.delete(*keys))
    finally:
        await client.aclose()
    return deleted


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per route first")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="clients in the concurrency run (0: skip)"
    )
    parser.add_argument(
        "--slowapi-strategy", choices=["fixed-window", "moving-window"], default="fixed-window"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 1 if result["budget_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
