"""Per-route counters and timing for the gate benchmark (see `bench.probes` for the sources)."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field, fields
from typing import Any, Self, cast

from httpx import AsyncClient

from app.core.db import Database
from app.redis.port import RedisPort
from bench import apps
from bench.probes import CommandStats, RedisWireTap, read_commandstats
from tests.support.upstash_bridge import UpstashBridge


class Tally:
    """Field-wise sums and differences of a dataclass of counters, and their per-request rates
    (`requests` is the divisor)."""

    __slots__ = ()
    requests: int

    def _values(self) -> list[int]:
        return [getattr(self, f.name) for f in fields(cast(Any, self))]

    def __add__(self, other: Self) -> Self:
        return type(self)(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def __sub__(self, other: Self) -> Self:
        return type(self)(*(a - b for a, b in zip(self._values(), other._values(), strict=True)))

    def per_request(self) -> dict[str, float]:
        n = max(self.requests, 1)
        names = [f.name for f in fields(cast(Any, self))]
        return {k: v / n for k, v in zip(names, self._values(), strict=True) if k != "requests"}


@dataclass(slots=True)
class Counts(Tally):
    requests: int = 0
    redis_commands: int = 0  # client-sent: bridge commands + redis-py wire commands
    round_trips: int = 0  # bridge HTTP requests + redis-py writes
    pg_queries: int = 0
    port_commands: int = 0  # the app's own RedisPort counter (AgentMall routes only)
    cs_scripts: int = 0  # INFO commandstats: EVAL/EVALSHA runs (server-wide)
    cs_executions: int = 0  # INFO commandstats: all executions incl. inside Lua, minus INFO
    cs_script_usec: int = 0  # INFO commandstats: server time in those script runs


@dataclass
class Probe:
    """Client-side counters (bridge, wire tap) and `INFO commandstats` of `redis_url`: the Redis
    the measured traffic goes to (the apps' `REDIS_URL` and the bridge's backend), so the
    server-side cross-check reads the server it checks."""

    bridge: UpstashBridge
    tap: RedisWireTap
    redis_url: str = apps.REDIS_URL

    def __post_init__(self) -> None:
        if self.bridge.redis_url != self.redis_url:
            raise ValueError(
                f"the Upstash bridge fronts {self.bridge.redis_url}, but commandstats would be "
                f"read from {self.redis_url}: the cross-check would not see its traffic"
            )

    def snapshot(self, db: Database, port: RedisPort | None) -> Counts:
        stats: CommandStats = read_commandstats(self.redis_url)
        return Counts(
            redis_commands=self.bridge.commands + self.tap.commands,
            round_trips=self.bridge.http_requests + self.tap.round_trips,
            pg_queries=db.queries.count,
            port_commands=port.commands if port else 0,
            cs_scripts=stats.scripts,
            cs_executions=stats.executions,
            cs_script_usec=stats.script_usec,
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
    chunks: list[Counts] = field(default_factory=list)  # each measured block, for cross-checks

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
        self.chunks.append(delta)
        return delta


@dataclass
class ConcurrentResult:
    name: str
    counts: Counts
    seconds: float

    @property
    def chunks(self) -> list[Counts]:
        return [self.counts]

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
