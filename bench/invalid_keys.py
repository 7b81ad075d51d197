"""Invalid-key flood benchmark: what random well-formed API keys from one address cost.

    .venv/bin/python -m bench.invalid_keys [--keys N] [--every M] [--backend redis|upstash] [--json]

One app (`create_app`, Redis by URL by default, or Upstash REST through `UpstashBridge`) on the
local PostgreSQL and Redis. One address sends N random well-formed keys (`am_live_` + 43
base64url characters) to `GET /v1/products/{sku}`; every M-th request, a real key from another
address asks for the same product. Counts: the attacker's answers, the Postgres queries its
requests caused (`Database.queries`), the Redis commands (`RedisPort.commands`), the cache sizes,
and the real key's answers. Exits 1 when the attacker caused more Postgres queries than its
allowance (`INVALID_KEYS_PER_IP_PER_MINUTE` per started minute) or the real key got a non-200.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.apikeys import KEY_PREFIX
from app.main import create_app
from bench import apps
from bench.gate import delete_keys, seed
from bench.report import cli
from tests.support.upstash_bridge import UpstashBridge

ATTACKER = ("198.51.100.66", 40000)
USER = ("192.0.2.10", 40001)
SKU = "BENCH-0001"


@dataclass
class Side:
    """What one address's requests got and cost."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    pg_queries: int = 0
    redis_commands: int = 0
    seconds: float = 0.0

    def add(self, status: int, queries: int, commands: int, seconds: float) -> None:
        self.requests += 1
        self.statuses[status] += 1
        self.pg_queries += queries
        self.redis_commands += commands
        self.seconds += seconds


def client_from(app: FastAPI, address: tuple[str, int]) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app, client=address), base_url="http://bench")


async def timed_get(app: FastAPI, client: AsyncClient, key: str, side: Side) -> None:
    services = app.state.services
    queries, commands = services.db.queries.count, services.redis.commands
    started = time.perf_counter()
    response = await client.get(f"/v1/products/{SKU}", headers={"X-API-Key": key})
    elapsed = time.perf_counter() - started
    side.add(
        response.status_code,
        services.db.queries.count - queries,
        services.redis.commands - commands,
        elapsed,
    )


async def flood(app: FastAPI, real_key: str, keys: int, every: int) -> dict[str, Any]:
    attacker, user = Side(), Side()
    async with client_from(app, ATTACKER) as bad, client_from(app, USER) as good:
        await timed_get(app, good, real_key, Side())  # warm the real key's cache entry
        started = time.perf_counter()
        for i in range(keys):
            await timed_get(app, bad, KEY_PREFIX + secrets.token_urlsafe(32), attacker)
            if i % every == every - 1:
                await timed_get(app, good, real_key, user)
        elapsed = time.perf_counter() - started
    cache = app.state.services.gate.cache
    return {
        "elapsed_s": round(elapsed, 2),
        "attacker": summary(attacker),
        "user": summary(user),
        "cache": {"known": len(cache.known), "unknown": len(cache.unknown)},
    }


def summary(side: Side) -> dict[str, Any]:
    data = asdict(side)
    data["statuses"] = dict(sorted(side.statuses.items()))
    data["mean_ms"] = round(1000 * side.seconds / max(side.requests, 1), 3)
    data["seconds"] = round(side.seconds, 2)
    return data


async def run(args: argparse.Namespace) -> dict[str, Any]:
    apps.PG_DATABASE = "agentmall_bench_keys"  # its own database: bench.gate may run meanwhile
    await apps.create_database()
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    bridge = UpstashBridge(apps.REDIS_URL, token=apps.UPSTASH_TOKEN)
    url = bridge.start() if args.backend == "upstash" else None
    app = create_app(apps.make_settings(args.backend, prefix, url))
    try:
        async with client_from(app, ("192.0.2.200", 40002)) as admin:
            real_key = await seed(admin)
        result = await flood(app, real_key, args.keys, args.every)
    finally:
        await app.state.services.close()
        await delete_keys([f"{prefix}*"])
        await asyncio.to_thread(bridge.stop)
        await apps.drop_database()
    allowance = app.state.services.settings.INVALID_KEYS_PER_IP_PER_MINUTE
    windows = 1 + int(result["elapsed_s"] // 60)
    result["config"] = {**vars(args), "allowance_per_minute": allowance, "minutes_started": windows}
    result["budget_failures"] = failures(result, allowance * windows)
    return result


def failures(result: dict[str, Any], budget: int) -> list[str]:
    found = []
    if result["attacker"]["pg_queries"] > budget:
        found.append(f"attacker caused {result['attacker']['pg_queries']} queries > {budget}")
    if set(result["user"]["statuses"]) != {200}:
        found.append(f"real key got {result['user']['statuses']}")
    return found


def text(result: dict[str, Any]) -> str:
    attacker, user, config = result["attacker"], result["user"], result["config"]
    return "\n".join(
        [
            f"backend: {config['backend']}; {config['keys']} random keys from {ATTACKER[0]}, "
            f"a real key from {USER[0]} every {config['every']}; {result['elapsed_s']} s",
            f"attacker: statuses {attacker['statuses']}; Postgres queries "
            f"{attacker['pg_queries']} (allowance {config['allowance_per_minute']}/minute, "
            f"{config['minutes_started']} minute(s) started); Redis commands "
            f"{attacker['redis_commands']}; mean {attacker['mean_ms']} ms",
            f"real key: statuses {user['statuses']}; Postgres queries {user['pg_queries']}; "
            f"Redis commands {user['redis_commands']}; mean {user['mean_ms']} ms",
            f"cache entries: known {result['cache']['known']}, "
            f"unknown {result['cache']['unknown']}",
            "budget: " + ("; ".join(result["budget_failures"]) or "PASS"),
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.invalid_keys")
    parser.add_argument("--keys", type=int, default=10_000, help="random keys from one address")
    parser.add_argument("--every", type=int, default=50, help="a real request every M keys")
    parser.add_argument("--backend", choices=["redis", "upstash"], default="redis")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.keys < 1 or args.every < 1:
        parser.error("--keys and --every must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return cli(parse_args(argv), run, text, "budget_failures")


if __name__ == "__main__":
    sys.exit(main())
