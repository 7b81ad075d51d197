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
metered request, no Postgres query added by the gate for a warm key (since issue 21 the gated
product read answers from the instance's copy: -1.00 against the no-gate baseline, which reads
PostgreSQL); and when the cross-check
disagrees (Redis, read at the same `BENCH_REDIS_URL` as the traffic, ran fewer scripts than the
client-side count in some chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from upstash_redis.asyncio import Redis as UpstashRedis

from app.core.db import Database
from app.main import create_app
from bench import apps, provenance
from bench.counts import ConcurrentResult, Counts, Probe, Route, concurrent
from bench.probes import RedisWireTap
from bench.report import (
    budget_failures,
    cli,
    concurrency_result,
    crosscheck_failures,
    crosscheck_notes,
    markdown,
    row_result,
)
from tests.support.upstash_bridge import UpstashBridge

# The plan limits every limiter gets, high enough that every measured request is admitted.
# PlanUpdate caps requests_per_minute at 100,000 (1,000,000 fails validation: 422).
PER_MINUTE = 100_000
PER_MONTH = 10_000_000
SKU = "BENCH-0001"
CLIENT_ADDR = ("203.0.113.7", 50000)
ROOT = Path(__file__).resolve().parent.parent


ROWS = [
    ("AgentMall gate via Upstash REST", "am_upstash", "am_upstash_open", True),
    ("AgentMall gate via Redis URL", "am_redis", "am_redis_open", True),
    ("upstash-ratelimit ×2 via Upstash REST", "two_limiters", "am_upstash_open", False),
    ("slowapi (Redis)", "slowapi", "slowapi_open", False),
]


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
    limiters = apps.TwoLimiters(ratelimit_redis, f"{prefix}ratelimit:", PER_MINUTE, PER_MONTH)
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


async def first_requests(bench: Bench) -> dict[str, dict[str, Any]]:
    """Each AgentMall app's first gated request: a cold key cache (the key is loaded)."""
    cold: dict[str, dict[str, Any]] = {}
    for name in ("am_upstash", "am_redis"):
        names_before = Counter(bench.probe.tap.names)
        delta = await bench.routes[name].measured(bench.probe, 1, timed=False)
        cold[name] = {k: v for k, v in asdict(delta).items() if k != "requests"}
        cold[name]["redis_py_commands"] = dict(bench.probe.tap.names - names_before)
        bench.routes[name].counts, bench.routes[name].chunks = Counts(), []
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


# -- orchestration ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
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
        budget = budget_failures(rows) + budget_failures(conc_as_rows(conc))
        mismatches = crosscheck_failures(rows) + crosscheck_failures(conc_as_rows(conc))
        return {
            "config": config(args, started) | {"load_before": load_before},
            "rows": rows,
            "concurrency": conc,
            "cold": cold,
            "budget_failures": budget,
            "crosscheck": crosscheck_notes(rows) + crosscheck_notes(conc_as_rows(conc)),
            "crosscheck_failures": mismatches,
            "failures": budget + mismatches,
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
        "git": provenance.git_state(ROOT, "app"),
        "redis": redacted(apps.REDIS_URL),
        "load_after": os.getloadavg(),
    }


def redacted(url: str) -> str:
    """The Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def cleanup(bench: Bench | None, bridge: UpstashBridge, tap: RedisWireTap) -> None:
    """Close clients and apps, delete every Redis key this run made, stop the bridge, drop the
    database. Every step runs even if an earlier one failed; what happened goes to stderr."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if bench is not None:
        b = bench
        steps += [(f"close client {i}", c.aclose) for i, c in enumerate(b.clients)]
        steps += [
            ("close AgentMall (Upstash) services", b.am_upstash.state.services.close),
            ("close AgentMall (Redis URL) services", b.am_redis.state.services.close),
            ("close upstash-ratelimit client", b.ratelimit_redis.close),
            ("close slowapi storage", lambda: asyncio.to_thread(apps.close_slowapi, b.slow)),
            ("dispose slowapi database", b.slow_db.dispose),
            ("delete Redis keys", lambda: delete_keys(redis_patterns(b.prefix))),
        ]
    steps += [
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
    tap.uninstall()


def redis_patterns(prefix: str) -> list[str]:
    """AgentMall apps and upstash-ratelimit use `prefix`; slowapi keys are
    `LIMITS:LIMITER/<key_prefix>/...` with key_prefix = `<prefix>slowapi`."""
    return [f"{prefix}*", f"LIMITS:LIMITER/{prefix}slowapi/*"]


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
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=summary)
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
    return cli(parse_args(argv), run, markdown, "failures")


if __name__ == "__main__":
    sys.exit(main())
