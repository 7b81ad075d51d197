"""MCP benchmark: what a tool call costs, side by side with its REST twin, in one run.

    .venv/bin/python -m bench.mcp [--requests N] [--warmup W] [--rounds R] [--json]

One process, one event loop, two apps (Redis by URL; Upstash REST through `UpstashBridge`, real
HTTP in front of the real Redis), each called in-process through an ASGI transport, on its own
PostgreSQL database (`agentmall_bench_mcp`, so `bench.gate` and the search benchmarks can run
meanwhile). Pairs, each timed over the same requests, interleaved in rounds (order rotated):

* `POST /v1/products/search` vs `tools/call search_catalog` (the same query and catalog);
* `GET /v1/products/{sku}` vs `tools/call lookup_catalog` with that one SKU;
* the tool call as one raw JSON-RPC POST (2026-07-28, what any client sends) and, for the search,
  through the SDK's own client (`mcp.Client`: its framing and output-schema validation included).

Counts per call: Redis commands and round trips (bridge counters for Upstash, a redis-py wire tap
for Redis by URL) and PostgreSQL statements (`Database.queries`). Also: entering and leaving a
stateless session manager (what `app/mcp/transport.py` does per request), and importing the SDK
in a fresh interpreter (what an instance's first MCP request pays). Exits 1 when a tool call
misses the REST budget: 1 Redis command and 1 round trip per call.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx2
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from app.core.db import Database
from app.main import create_app
from app.mcp.router import transport_of
from app.redis.port import RedisPort
from bench import apps
from bench.counts import Counts, Probe
from bench.probes import RedisWireTap
from bench.report import cli
from tests.support.upstash_bridge import UpstashBridge

DATABASE = "agentmall_bench_mcp"
PER_MINUTE = 100_000  # every measured call is admitted
PER_MONTH = 10_000_000
PRODUCTS = 500
QUERY = "desk lamp"
SKU = "LAMP-00042"
SEARCH = "/v1/products/search"
LOOKUP = "lookup_catalog"
CLIENT_ADDR = ("203.0.113.7", 50000)
BASE_URL = "http://127.0.0.1:8000"  # a host /mcp answers to (localhost, any port)
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1.0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
BUDGET = {"redis_commands": 1.0, "round_trips": 1.0}


@dataclass
class Call:
    """One measured call shape against one app."""

    backend: str
    label: str
    kind: str  # "rest" | "mcp"
    send: Callable[[], Awaitable[None]]
    db: Database
    port: RedisPort
    latencies_ms: list[float] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    async def measured(self, probe: Probe, n: int, *, timed: bool = True) -> None:
        gc.collect()
        before = probe.snapshot(self.db, self.port)
        for _ in range(n):
            start = time.perf_counter()
            await self.send()
            if timed:
                self.latencies_ms.append((time.perf_counter() - start) * 1000)
        delta = probe.snapshot(self.db, self.port) - before
        delta.requests = n
        if timed:
            self.counts = self.counts + delta


# -- the calls ----------------------------------------------------------------------------------


def rest_client(app: FastAPI) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app, client=CLIENT_ADDR), base_url=BASE_URL)


def tool_call(name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": META},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    return body, headers


def rest_call(client: AsyncClient, method: str, path: str, key: str, body: Any = None) -> Any:
    async def send() -> None:
        response = await client.request(method, path, json=body, headers={"X-API-Key": key})
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")

    return send


def mcp_call(client: AsyncClient, key: str, name: str, arguments: dict[str, Any]) -> Any:
    body, headers = tool_call(name, arguments)
    headers = {**headers, "X-API-Key": key}

    async def send() -> None:
        response = await client.post("/mcp", json=body, headers=headers)
        answer = response.json() if response.status_code == 200 else {}
        if "result" not in answer or answer["result"].get("isError"):
            raise RuntimeError(f"tools/call {name}: {response.status_code} {response.text[:300]}")

    return send


def sdk_call(sdk: Client, name: str, arguments: dict[str, Any]) -> Any:
    async def send() -> None:
        result = await sdk.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"SDK tools/call {name}: {result.content}")

    return send


def calls_for(backend: str, app: FastAPI, client: AsyncClient, sdk: Client, key: str) -> list[Call]:
    services = app.state.services
    search = {"query": QUERY}
    product = f"/v1/products/{SKU}"
    shapes = [
        ("POST /v1/products/search", "rest", rest_call(client, "POST", SEARCH, key, search)),
        ("tools/call search_catalog", "mcp", mcp_call(client, key, "search_catalog", search)),
        ("search_catalog via mcp.Client", "mcp", sdk_call(sdk, "search_catalog", search)),
        (f"GET {product}", "rest", rest_call(client, "GET", product, key)),
        ("tools/call lookup_catalog", "mcp", mcp_call(client, key, LOOKUP, {"skus": [SKU]})),
    ]
    db, port = services.db, services.redis
    return [Call(backend, label, kind, send, db, port) for label, kind, send in shapes]


# -- set-up -------------------------------------------------------------------------------------


async def seed(client: AsyncClient) -> str:
    """High plan limits, `PRODUCTS` lamps and desks, one account; returns its API key."""
    admin = {"X-API-Key": apps.ADMIN_KEY}
    plan = {"included_calls": PER_MONTH, "requests_per_minute": PER_MINUTE}
    _ok(await client.put("/v1/admin/plans/free", json=plan, headers=admin))
    kinds = ["Desk lamp", "Floor lamp", "Standing desk", "Desk organiser", "Reading light"]
    products = [
        {
            "sku": f"LAMP-{i:05d}",
            "name": f"{kinds[i % len(kinds)]} {i}",
            "description": "A bench product.",
            "category": "home-office",
            "price_cents": 1000 + 37 * i,
            "attributes": {"color": ["black", "white", "oak"][i % 3]},
            "stock": i % 7,
        }
        for i in range(PRODUCTS)
    ]
    _ok(await client.put("/v1/admin/products", json={"products": products}, headers=admin))
    response = _ok(await client.post("/v1/signup", json={"email": "mcp-bench@example.com"}), 201)
    return str(response.json()["api_key"])


def _ok(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response


# -- the extras: the per-request session manager, and the SDK's import cost ----------------------


async def manager_enter_exit_us(app: FastAPI, n: int = 2000) -> float:
    """Median µs to build, enter and leave a stateless session manager (done per MCP request)."""
    transport = transport_of(app)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        manager = StreamableHTTPSessionManager(
            app=transport.lowlevel,
            json_response=True,
            stateless=True,
            security_settings=transport.security,
        )
        async with manager.run():
            pass
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


IMPORT_CHILD = """\
import time
t0 = time.perf_counter()
import api.index
t1 = time.perf_counter()
import app.mcp.transport
t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def import_costs_ms(samples: int = 3) -> dict[str, float]:
    """Median ms, each in a fresh interpreter: the API function's import, then the SDK's (the
    MCP transport and tools), which `POST /mcp` imports on an instance's first MCP request."""
    api, sdk = [], []
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(apps.ROOT), "HOME": "/tmp"}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(samples + 1):  # the first one compiles stale .pyc files: not counted
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_CHILD],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            api.append(float(out[0]))
            sdk.append(float(out[1]))
    return {"api_index_ms": statistics.median(api[1:]), "mcp_sdk_ms": statistics.median(sdk[1:])}


# -- the run ------------------------------------------------------------------------------------


def chunks(total: int, rounds: int) -> list[int]:
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    apps.PG_DATABASE = DATABASE  # its own database: other benchmarks may run meanwhile
    await apps.create_database()
    tap = RedisWireTap()
    tap.install()
    bridge = UpstashBridge(apps.REDIS_URL, token=apps.UPSTASH_TOKEN)
    bridge.start()
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    built = {
        "Redis URL": create_app(apps.make_settings("redis", f"{prefix}url:")),
        "Upstash REST": create_app(apps.make_settings("upstash", f"{prefix}up:", bridge.url)),
    }
    clients = {name: rest_client(app) for name, app in built.items()}
    probe = Probe(bridge, tap)
    stack = AsyncExitStack()  # the SDK clients: left in reverse order (anyio cancel scopes)
    try:
        key = await seed(clients["Redis URL"])
        calls: list[Call] = []
        for name, app in built.items():
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    transport=httpx2.ASGITransport(app=app, client=CLIENT_ADDR),
                    headers={"X-API-Key": key},
                )
            )
            transport = streamable_http_client(f"{BASE_URL}/mcp", http_client=http)
            sdk = await stack.enter_async_context(Client(transport))
            calls += calls_for(name, app, clients[name], sdk, key)
        for call in calls:  # warm-up: keys cached, connections open, the SDK imported
            await call.measured(probe, args.warmup, timed=False)
        for i, size in enumerate(chunks(args.requests, args.rounds)):
            order = calls[i % len(calls) :] + calls[: i % len(calls)]
            for call in order:
                await call.measured(probe, size)
        manager_us = await manager_enter_exit_us(built["Redis URL"])
        rows = [row(call) for call in calls]
        return {
            "config": config(args, started),
            "rows": rows,
            "overhead": overhead(rows),
            "manager_enter_exit_us": manager_us,
            "imports": await asyncio.to_thread(import_costs_ms),
            "budget_failures": budget_failures(rows),
        }
    finally:
        await stack.aclose()
        for client in clients.values():
            await client.aclose()
        for app in built.values():
            await app.state.services.close()
        await delete_keys(f"{prefix}*")
        await asyncio.to_thread(bridge.stop)
        await apps.drop_database()
        tap.uninstall()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def row(call: Call) -> dict[str, Any]:
    per = call.counts.per_request()
    return {
        "backend": call.backend,
        "call": call.label,
        "kind": call.kind,
        "requests": call.counts.requests,
        "redis_commands": per["redis_commands"],
        "round_trips": per["round_trips"],
        "pg_statements": per["pg_queries"],
        "median_ms": statistics.median(call.latencies_ms),
        "p95_ms": p95(call.latencies_ms),
    }


def overhead(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tool call's median and p95 over its REST twin's (the row before it of kind rest)."""
    out, twin = [], None
    for r in rows:
        if r["kind"] == "rest":
            twin = r
            continue
        assert twin is not None and twin["backend"] == r["backend"]
        out.append(
            {
                "backend": r["backend"],
                "call": r["call"],
                "twin": twin["call"],
                "median_added_ms": r["median_ms"] - twin["median_ms"],
                "p95_added_ms": r["p95_ms"] - twin["p95_ms"],
                "median_ratio": r["median_ms"] / twin["median_ms"],
            }
        )
    return out


def budget_failures(rows: list[dict[str, Any]]) -> list[str]:
    failures = []
    for r in rows:
        if r["kind"] != "mcp":
            continue
        for name, limit in BUDGET.items():
            if r[name] > limit:
                failures.append(f"{r['backend']} {r['call']}: {r[name]:.2f} {name} > {limit:g}")
    return failures


async def delete_keys(pattern: str) -> int:
    client = aioredis.from_url(apps.REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
        return int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()


def config(args: argparse.Namespace, started: str) -> dict[str, Any]:
    return {
        "requests": args.requests,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "products": PRODUCTS,
        "query": QUERY,
        "started": started,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "mcp": metadata.version("mcp"),
    }


# -- report -------------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        "## MCP tool calls vs their REST twins (`bench/mcp.py`)",
        "",
        f"{c['started']}, {c['cpus']} CPUs, Python {c['python']}, mcp {c['mcp']}; "
        f"{c['requests']} timed calls per row after {c['warmup']} untimed, interleaved in "
        f"{c['rounds']} rounds; in-process ASGI, {c['products']} products, query "
        f"`{c['query']}`. The tool calls use protocol 2026-07-28 (one POST per call).",
        "",
        "| backend | call | Redis commands / call | Redis round trips / call | "
        "PostgreSQL statements / call | median ms | p95 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['backend']} | {r['call']} | {r['redis_commands']:.2f} | "
            f"{r['round_trips']:.2f} | {r['pg_statements']:.2f} | {r['median_ms']:.2f} | "
            f"{r['p95_ms']:.2f} |"
        )
    lines += ["", "| backend | tool call | vs | median added | p95 added | median ratio |"]
    lines.append("|---|---|---|---:|---:|---:|")
    for o in result["overhead"]:
        lines.append(
            f"| {o['backend']} | {o['call']} | {o['twin']} | {o['median_added_ms']:+.2f} ms | "
            f"{o['p95_added_ms']:+.2f} ms | {o['median_ratio']:.2f}× |"
        )
    imports = result["imports"]
    verdict = (
        "met by every tool call"
        if not result["budget_failures"]
        else "MISSED: " + "; ".join(result["budget_failures"])
    )
    lines += [
        "",
        f"- Budget (1 Redis command, 1 round trip per metered call, as REST): {verdict}.",
        f"- A stateless session manager built, entered and left (per MCP request): "
        f"{result['manager_enter_exit_us']:.0f} µs median.",
        f"- Importing the SDK (the MCP transport and tools) in a fresh interpreter, paid by an "
        f"instance's first MCP request only: {imports['mcp_sdk_ms']:.0f} ms, after "
        f"{imports['api_index_ms']:.0f} ms for `import api.index`.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.mcp", description=summary)
    parser.add_argument("--requests", type=int, default=300, help="timed calls per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per row first")
    parser.add_argument("--rounds", type=int, default=10, help="interleaving rounds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1 or args.warmup < 1:
        parser.error("--requests, --warmup and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return cli(parse_args(argv), run, markdown, "budget_failures")


if __name__ == "__main__":
    sys.exit(main())
