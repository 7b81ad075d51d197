"""One Redis port, three adapters.

The app needs very little from Redis: run a Lua script (by SHA, falling back to the source), run a
plain command, and ping. Every adapter answers strings as `str` and numbers as `int`, so the gate
script behaves the same on Upstash REST (production on Vercel), any Redis by URL (self-hosting) and
the embedded in-process Redis (local development).

Every call is bounded by `REDIS_TIMEOUT_MS` (the Upstash SDK's own HTTP client has no timeout) and
never retried here: a retried `EVALSHA` whose first reply was lost would count a request twice.
After a failure the port short-circuits for a moment (`cooldown`), so an outage costs each request
microseconds instead of the full timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from typing import Any

logger = logging.getLogger("agentmall.redis")

RedisValue = Any  # int | str | None | list[RedisValue]


class RedisUnavailable(Exception):
    """Redis did not answer in time (or at all); the caller applies RATE_LIMIT_FAILURE_MODE."""


class ScriptMissing(Exception):
    """EVALSHA answered NOSCRIPT: the server has not seen this script (new server, or flushed)."""


class Script:
    """A Lua script and its SHA-1, computed locally so no SCRIPT LOAD round trip is needed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class RedisPort(ABC):
    """What the app needs from Redis, whatever is behind it."""

    backend: str

    def __init__(self, *, timeout_ms: int, cooldown_s: float = 1.0) -> None:
        self.timeout = timeout_ms / 1000
        self.cooldown = cooldown_s
        self._down_until = 0.0
        self.commands = 0  # commands sent, for benchmarks and tests

    async def run_script(self, script: Script, keys: list[str], args: list[Any]) -> RedisValue:
        """EVALSHA, and on NOSCRIPT the full EVAL (which also caches the script server-side)."""
        try:
            return await self._call(self._evalsha, script.sha, keys, args)
        except ScriptMissing:
            logger.info("script %s not cached on the server; sending its source", script.sha[:8])
            return await self._call(self._eval, script.source, keys, args)

    async def eval(
        self, script: str, keys: list[str] | None = None, args: list[Any] | None = None
    ) -> RedisValue:
        """EVAL with the upstash-redis signature, so `upstash_ratelimit` can run on any adapter."""
        return await self._call(self._eval, script, list(keys or []), list(args or []))

    async def execute(self, *command: Any) -> RedisValue:
        """One plain command, e.g. `execute("INCR", key)`."""
        return await self._call(self._execute, list(command))

    async def ping(self) -> bool:
        return bool(await self._call(self._execute, ["PING"]))

    async def _call(self, fn: Any, *args: Any) -> RedisValue:
        if time.monotonic() < self._down_until:
            raise RedisUnavailable(f"{self.backend} marked down after a recent failure")
        self.commands += 1
        try:
            async with asyncio.timeout(self.timeout):
                return await fn(*args)
        except ScriptMissing:
            raise
        except TimeoutError as exc:
            self._trip()
            raise RedisUnavailable(f"{self.backend} timed out after {self.timeout:.3f}s") from exc
        except Exception as exc:  # connection refused, DNS, HTTP, protocol errors
            if self._is_noscript(exc):
                raise ScriptMissing(str(exc)) from exc
            self._trip()
            logger.warning("redis (%s) failed: %s", self.backend, type(exc).__name__)
            raise RedisUnavailable(f"{self.backend} failed: {type(exc).__name__}") from exc

    def _trip(self) -> None:
        self._down_until = time.monotonic() + self.cooldown

    @staticmethod
    def _is_noscript(exc: Exception) -> bool:
        return str(exc).startswith("NOSCRIPT") or type(exc).__name__ == "NoScriptError"

    @abstractmethod
    async def _evalsha(self, sha: str, keys: list[str], args: list[Any]) -> RedisValue: ...

    @abstractmethod
    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> RedisValue: ...

    @abstractmethod
    async def _execute(self, command: list[Any]) -> RedisValue: ...

    @abstractmethod
    async def close(self) -> None: ...
